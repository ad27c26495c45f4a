//! Garbage collection: removes what no tag reaches, and abandoned uploads, while pushes go on.
//!
//! [`collect`] marks, in every repository, the manifests its tags reach, the children of reachable
//! indexes and (optionally) the referrers of reachable manifests, then the blobs they name. It
//! then removes, in an order that never leaves a link to missing bytes:
//!
//! 1. cached tags and manifests unused past [`GcOptions::cache`]'s retention, and untagged
//!    manifests nothing reaches (only with [`GcOptions::delete_untagged`]);
//! 2. layer links to blobs no kept manifest of the repository names;
//! 3. blobs no repository links any more, with their location record and `used` marker;
//! 4. bytes of streamed uploads that nothing points at (`data/<id>`), and stale upload tails;
//! 5. uploads idle for longer than [`GcOptions::upload_max_age`] (aborting their multipart
//!    uploads on object stores);
//!
//! and then reconciles the catalog with the repositories left holding a manifest.
//!
//! **Safe during pushes.** Nothing younger than [`GcOptions::grace`] is removed: a blob whose
//! bytes, any link or its `used` marker ([`crate::paths::blob_used`]) changed within the grace
//! period is kept with all its links, and so is a manifest pushed within it, with everything it
//! reaches. Ages are the storage's modification times against this host's clock, so the grace
//! must also exceed any skew between the two. A push that reuses a stored blob marks it used (on `HEAD`, mount, and manifest `PUT`,
//! at most once per [`crate::RegistryConfig::touch_interval`]), and a blob's marker and bytes are
//! read again just before it is removed; a layer link removed while a push marks its blob is put
//! back, and a manifest pushed again since the listing stays. The grace period must therefore
//! exceed the touch interval plus the longest push; the default hour against ten minutes leaves
//! room. What remains to chance is a push whose reuse of a blob falls between the collector's last
//! check and its removal, a few milliseconds: its manifest `PUT` then fails with
//! `MANIFEST_BLOB_UNKNOWN` (nothing is corrupted), or, for a mount in that instant, the link reads
//! as `BLOB_UNKNOWN` until the next collection removes it.
//!
//! Removals run 16 storage requests at a time. If a manifest that must be kept cannot
//! be read, collection stops before removing anything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};

use crate::admission::Caller;
use crate::blobs::BlobLocation;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::paths;
use crate::reference::{Reference, RepositoryName, Tag};
use crate::registry::Registry;
use crate::storage::{ObjectMeta, StorageExt};
use crate::upload::UploadSession;

/// What [`collect`] removes, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Anything written or used more recently than this is kept. Default: one hour.
    pub grace: Duration,
    /// Also remove manifests that no tag reaches (by default they are kept, with their blobs).
    pub delete_untagged: bool,
    /// Keep the referrers (signatures, SBOMs…) of every kept manifest. Default: true.
    pub keep_referrers: bool,
    /// Uploads that received nothing for this long are abandoned and removed. Default: 24 hours.
    pub upload_max_age: Duration,
    /// Report what would be removed, and remove nothing.
    pub dry_run: bool,
    /// Repositories that cache an upstream registry, whose content goes once unused for a while.
    pub cache: Option<CacheRetention>,
}

/// How long a pull-through cache keeps what nobody pulls: in its repositories, a tag or manifest
/// whose link was last written (by the fetch, or by a pull refreshing it) longer ago than
/// `unused_for` is removed, and then whatever only it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRetention {
    /// Repository name prefixes the cache serves (`docker.io` covers `docker.io/…`); an empty
    /// prefix covers every repository.
    pub prefixes: Vec<String>,
    /// How long unused content stays.
    pub unused_for: Duration,
}

impl CacheRetention {
    /// True when `name` is a repository of the cache.
    pub fn covers(&self, name: &RepositoryName) -> bool {
        self.prefixes.iter().any(|p| {
            p.is_empty()
                || name
                    .as_str()
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            delete_untagged: false,
            keep_referrers: true,
            upload_max_age: Duration::from_secs(24 * 3600),
            dry_run: false,
            cache: None,
        }
    }
}

/// One thing [`collect`] removed (or would remove, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A blob's bytes, shared by every repository.
    Blob {
        /// The blob.
        digest: Digest,
        /// Its size.
        bytes: u64,
    },
    /// A cached tag nobody pulled for [`CacheRetention::unused_for`].
    Tag {
        /// The repository.
        repository: RepositoryName,
        /// The tag.
        tag: Tag,
    },
    /// An untagged manifest, from one repository.
    Manifest {
        /// The repository.
        repository: RepositoryName,
        /// The manifest.
        digest: Digest,
    },
    /// A blob's link from one repository.
    Link {
        /// The repository.
        repository: RepositoryName,
        /// The blob.
        digest: Digest,
    },
    /// An upload that received nothing for [`GcOptions::upload_max_age`].
    Upload {
        /// The upload's id.
        id: String,
        /// The bytes it had received.
        bytes: u64,
    },
    /// An object nothing points at: bytes of an upload that lost a race or crashed, a stale tail.
    Orphan {
        /// Its key.
        key: String,
        /// Its size.
        bytes: u64,
    },
}

impl Removal {
    /// Storage bytes the removal frees (links and manifest records count as nothing).
    pub fn bytes(&self) -> u64 {
        match self {
            Removal::Blob { bytes, .. }
            | Removal::Upload { bytes, .. }
            | Removal::Orphan { bytes, .. } => *bytes,
            Removal::Tag { .. } | Removal::Manifest { .. } | Removal::Link { .. } => 0,
        }
    }
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Blob { digest, bytes } => write!(f, "blob {digest} ({bytes} bytes)"),
            Removal::Tag { repository, tag } => write!(f, "tag {repository}:{tag}"),
            Removal::Manifest { repository, digest } => {
                write!(f, "manifest {repository}@{digest}")
            }
            Removal::Link { repository, digest } => write!(f, "link {repository}@{digest}"),
            Removal::Upload { id, bytes } => write!(f, "upload {id} ({bytes} bytes)"),
            Removal::Orphan { key, bytes } => write!(f, "orphan {key} ({bytes} bytes)"),
        }
    }
}

/// What a collection saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Repositories walked.
    pub repositories: u64,
    /// Manifests kept, over all repositories.
    pub manifests_kept: u64,
    /// Blobs kept (manifests' bytes included).
    pub blobs_kept: u64,
    /// Everything removed, or that would be in a dry run.
    pub removed: Vec<Removal>,
    /// True when nothing was actually removed.
    pub dry_run: bool,
    /// Catalog entries written or removed to match the repositories holding a manifest (one
    /// push racing the removal of a repository's last manifest can leave one out of step).
    pub catalog_changes: u64,
}

impl GcReport {
    /// Bytes freed (or that would be).
    pub fn bytes_freed(&self) -> u64 {
        self.removed.iter().map(Removal::bytes).sum()
    }
}

/// What `blobs/` holds for one digest.
#[derive(Debug, Default, Clone)]
struct StoredBlob {
    /// Its objects: data or location record, and the `used` marker.
    keys: Vec<String>,
    /// Where a location record points.
    target: Option<String>,
    size: u64,
    newest: Option<SystemTime>,
}

/// What `repositories/<name>/` holds.
#[derive(Debug, Default)]
struct Repo {
    tags: Vec<(Tag, SystemTime)>,
    revisions: BTreeMap<Digest, SystemTime>,
    layers: BTreeMap<Digest, SystemTime>,
    referrers: HashMap<Digest, Vec<Digest>>,
}

/// What one repository keeps.
#[derive(Debug, Default)]
struct Marked {
    manifests: HashSet<Digest>,
    blobs: HashSet<Digest>,
}

/// Runs one collection over the registry's storage; see the module documentation.
pub async fn collect(registry: &Registry, options: &GcOptions) -> Result<GcReport> {
    let now = SystemTime::now();
    let cutoff = now
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let blobs = list_blobs(registry).await?;
    let repos = list_repositories(registry).await?;
    let mut marked = BTreeMap::new();
    for (name, repo) in &repos {
        marked.insert(
            name.clone(),
            mark(registry, name, repo, options, cutoff).await?,
        );
    }
    let gc = Collection {
        registry,
        dry_run: options.dry_run,
    };
    let mut report = GcReport {
        repositories: repos.len() as u64,
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    let fresh = |d: &Digest| {
        blobs
            .get(d)
            .and_then(|b| b.newest)
            .is_some_and(|t| t > cutoff)
    };
    let mut linked = HashSet::new();
    let mut kept = HashSet::new();
    // Repositories left holding a manifest: what the catalog must list.
    let mut holding = HashSet::new();
    for (name, repo) in &repos {
        let keep = &marked[name];
        report.manifests_kept += keep.manifests.len() as u64;
        kept.extend(keep.manifests.iter().cloned());
        kept.extend(keep.blobs.iter().cloned());
        if let Some(expired) = expiry(options, name) {
            let tags: Vec<Tag> = repo
                .tags
                .iter()
                .filter(|(_, modified)| *modified < expired && *modified <= cutoff)
                .map(|(tag, _)| tag.clone())
                .collect();
            let removed =
                concurrently(tags, |tag| async move { gc.remove_tag(name, &tag).await }).await?;
            report.removed.extend(removed);
        }
        let removed = &mut report.removed;
        let manifest_stays =
            |d: &Digest, modified| keep.manifests.contains(d) || modified > cutoff || fresh(d);
        let remove_manifest = |d: Digest| async move { gc.remove_manifest(name, &d, cutoff).await };
        let before = removed.len();
        sweep(
            &repo.revisions,
            manifest_stays,
            remove_manifest,
            &mut linked,
            removed,
        )
        .await?;
        if removed.len() - before < repo.revisions.len() {
            holding.insert(name.clone());
        }
        let blobs = &blobs;
        let link_stays =
            |d: &Digest, modified| keep.blobs.contains(d) || modified > cutoff || fresh(d);
        let remove_link =
            |d: Digest| async move { gc.remove_link(name, &d, blobs.get(&d), cutoff).await };
        sweep(&repo.layers, link_stays, remove_link, &mut linked, removed).await?;
    }
    let mut candidates = Vec::new();
    for (digest, blob) in &blobs {
        let in_use = kept.contains(digest)
            || linked.contains(digest)
            || blob.newest.is_none_or(|t| t > cutoff);
        if !in_use {
            candidates.push((digest.clone(), blob.clone()));
        }
    }
    let decided = concurrently(candidates, |(digest, blob)| async move {
        if used_since(registry, &digest, Some(&blob), cutoff).await? {
            return Ok(None);
        }
        gc.remove_blob(&digest, &blob).await.map(Some)
    })
    .await?;
    let removed_blobs: HashSet<&Digest> = decided
        .iter()
        .flatten()
        .filter_map(|r| match r {
            Removal::Blob { digest, .. } => Some(digest),
            _ => None,
        })
        .collect();
    let mut targets = HashSet::new();
    for (digest, blob) in &blobs {
        let orphan_marker = blob.keys.is_empty();
        if !removed_blobs.contains(digest) && !orphan_marker {
            report.blobs_kept += 1;
            targets.extend(blob.target.clone());
        }
    }
    report.removed.extend(decided.into_iter().flatten());
    report
        .removed
        .extend(gc.remove_orphans(&targets, cutoff).await?);
    report.removed.extend(gc.purge_uploads(options, now).await?);
    if !options.dry_run && !registry.index.legacy(&**registry.storage()).await? {
        report.catalog_changes = registry.catalog.reconcile(&holding).await? as u64;
    }
    Ok(report)
}

/// Removes the links (manifest revisions or layer links) of one repository that `stays` does not
/// keep, [`CONCURRENCY`] at a time: what went joins `removed`; what stays, or what `remove` left
/// because a push used it meanwhile, joins `linked`.
async fn sweep<F, Fut>(
    entries: &BTreeMap<Digest, SystemTime>,
    stays: impl Fn(&Digest, SystemTime) -> bool,
    remove: F,
    linked: &mut HashSet<Digest>,
    removed: &mut Vec<Removal>,
) -> Result<()>
where
    F: Fn(Digest) -> Fut,
    Fut: Future<Output = Result<Option<Removal>>>,
{
    let mut go = Vec::new();
    for (digest, &modified) in entries {
        if stays(digest, modified) {
            linked.insert(digest.clone());
        } else {
            go.push(digest.clone());
        }
    }
    let outcomes = concurrently(go, |d| {
        let removing = remove(d.clone());
        async move { Ok((d, removing.await?)) }
    })
    .await?;
    for (digest, outcome) in outcomes {
        match outcome {
            Some(removal) => removed.push(removal),
            None => {
                linked.insert(digest);
            }
        }
    }
    Ok(())
}

/// Who the tag history names for the tags a collection removes.
const COLLECTOR: &str = "garbage collection";

/// How many storage requests a collection keeps in flight.
const CONCURRENCY: usize = 16;

/// Runs `f` over `items`, [`CONCURRENCY`] at a time, and returns the results in order, or the
/// first error.
async fn concurrently<I, T, F, Fut>(items: I, f: F) -> Result<Vec<T>>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    futures::stream::iter(items)
        .map(f)
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

/// Only the last step of [`collect`]: ends uploads idle for longer than
/// [`GcOptions::upload_max_age`] and removes what crashes left in upload folders. Cheap (it reads
/// `uploads/` alone), so servers run it often even where full collection is off.
pub async fn purge_uploads(registry: &Registry, options: &GcOptions) -> Result<GcReport> {
    let gc = Collection {
        registry,
        dry_run: options.dry_run,
    };
    Ok(GcReport {
        dry_run: options.dry_run,
        removed: gc.purge_uploads(options, SystemTime::now()).await?,
        ..GcReport::default()
    })
}

/// True when the blob's objects changed after `cutoff` since they were listed: a push reused it.
async fn used_since(
    registry: &Registry,
    digest: &Digest,
    blob: Option<&StoredBlob>,
    cutoff: SystemTime,
) -> Result<bool> {
    let storage = registry.storage();
    let mut keys = blob.map(|b| b.keys.clone()).unwrap_or_default();
    keys.push(paths::blob_used(digest));
    for key in keys {
        match storage.head(&key).await {
            Ok(meta) if meta.last_modified > cutoff => return Ok(true),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Reads `blobs/`: every digest's objects, size and newest modification.
async fn list_blobs(registry: &Registry) -> Result<BTreeMap<Digest, StoredBlob>> {
    let storage = registry.storage();
    let mut blobs: BTreeMap<Digest, StoredBlob> = BTreeMap::new();
    let mut listing = storage.list_all(paths::BLOBS);
    while let Some(meta) = listing.try_next().await? {
        // Objects of any other shape are for scrub to report.
        let Some((digest, kind)) = paths::parse_blob_key(&meta.key) else {
            continue;
        };
        let blob = blobs.entry(digest).or_default();
        blob.newest = blob.newest.max(Some(meta.last_modified));
        match kind {
            paths::BlobObject::Data => blob.size = meta.size,
            paths::BlobObject::Location => {
                if let Some(bytes) = storage.get_opt(&meta.key).await? {
                    let location: BlobLocation = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::storage(format!("corrupt record at {}: {e}", meta.key))
                    })?;
                    blob.size = location.size;
                    blob.target = Some(location.key);
                }
            }
            paths::BlobObject::Used => continue,
        }
        blob.keys.push(meta.key);
    }
    Ok(blobs)
}

/// Reads `repositories/`: every repository's tags, revisions, layer links and referrers.
async fn list_repositories(registry: &Registry) -> Result<BTreeMap<RepositoryName, Repo>> {
    let storage = registry.storage();
    let mut repos: BTreeMap<RepositoryName, Repo> = BTreeMap::new();
    let mut listing = storage.list_all(paths::REPOSITORIES);
    while let Some(ObjectMeta {
        key, last_modified, ..
    }) = listing.try_next().await?
    {
        let Some((name, entry)) = paths::parse_repository_key(&key) else {
            continue;
        };
        let repo = repos.entry(name).or_default();
        match entry {
            paths::RepositoryEntry::Tag(tag) | paths::RepositoryEntry::LegacyTag(tag) => {
                repo.tags.push((tag, last_modified))
            }
            paths::RepositoryEntry::TagChange(_) => {}
            paths::RepositoryEntry::Revision(d) => {
                repo.revisions.insert(d, last_modified);
            }
            paths::RepositoryEntry::Layer(d) => {
                repo.layers.insert(d, last_modified);
            }
            paths::RepositoryEntry::Referrer { subject, referrer } => {
                repo.referrers.entry(subject).or_default().push(referrer);
            }
        }
    }
    Ok(repos)
}

/// When `name` is a cache repository, the time before which its content counts as unused.
fn expiry(options: &GcOptions, name: &RepositoryName) -> Option<SystemTime> {
    let cache = options.cache.as_ref().filter(|c| c.covers(name))?;
    Some(
        SystemTime::now()
            .checked_sub(cache.unused_for)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

/// Marks what one repository keeps: what its tags reach, and every manifest pushed within the
/// grace period (or every manifest, unless untagged ones go).
async fn mark(
    registry: &Registry,
    name: &RepositoryName,
    repo: &Repo,
    options: &GcOptions,
    cutoff: SystemTime,
) -> Result<Marked> {
    let expired = expiry(options, name);
    let live_tags: Vec<Tag> = repo
        .tags
        .iter()
        .filter(|(_, modified)| expired.is_none_or(|t| *modified >= t))
        .map(|(tag, _)| tag.clone())
        .collect();
    let tagged = concurrently(live_tags, |tag| async move {
        Ok(registry.tags.get(name, &tag).await?.map(|r| r.digest))
    })
    .await?;
    let mut pending: Vec<Digest> = tagged.into_iter().flatten().collect();
    for (digest, &modified) in &repo.revisions {
        let untagged_stay = !options.delete_untagged && expired.is_none_or(|t| modified >= t);
        if untagged_stay || modified > cutoff {
            pending.push(digest.clone());
        }
    }
    let mut marked = Marked::default();
    while !pending.is_empty() {
        // A tag or index naming a manifest this repository lacks: nothing to keep.
        let batch: Vec<Digest> = std::mem::take(&mut pending)
            .into_iter()
            .filter(|d| repo.revisions.contains_key(d) && marked.manifests.insert(d.clone()))
            .collect();
        let manifests = concurrently(batch, |digest| async move {
            let unreadable = |e: Error| {
                Error::storage(format!(
                    "garbage collection stopped before removing anything: cannot read manifest \
                     {name}@{digest} ({e}); `registry scrub` checks the store"
                ))
            };
            let content = registry
                .get_manifest(name, &Reference::Digest(digest.clone()))
                .await
                .map_err(unreadable)?;
            let manifest = Manifest::parse(&content.bytes, Some(&content.info.media_type))
                .map_err(unreadable)?;
            Ok((digest, manifest))
        })
        .await?;
        for (digest, manifest) in manifests {
            marked
                .blobs
                .extend(manifest.blob_references().map(|d| d.digest.clone()));
            pending.extend(manifest.manifests.iter().map(|d| d.digest.clone()));
            if options.keep_referrers
                && let Some(referrers) = repo.referrers.get(&digest)
            {
                pending.extend(referrers.iter().cloned());
            }
        }
    }
    Ok(marked)
}

/// The removing half of a collection: each step removes (unless this is a dry run) and returns
/// what it removed.
#[derive(Clone, Copy)]
struct Collection<'a> {
    registry: &'a Registry,
    dry_run: bool,
}

impl Collection<'_> {
    async fn delete(&self, key: &str) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        self.registry.storage().delete(key).await
    }

    async fn remove_tag(&self, name: &RepositoryName, tag: &Tag) -> Result<Removal> {
        if !self.dry_run
            && let Some(record) = self.registry.tags.get(name, tag).await?
        {
            let caller = Caller {
                identity: Some(COLLECTOR.into()),
                request_id: None,
            };
            self.registry
                .tags
                .delete(name, tag, &record.digest, &caller)
                .await?;
        }
        Ok(Removal::Tag {
            repository: name.clone(),
            tag: tag.clone(),
        })
    }

    /// Removes an unreached manifest unless it was pushed again since the listing. `None` when it
    /// stays.
    async fn remove_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<Option<Removal>> {
        match self
            .registry
            .storage()
            .head(&paths::manifest_link(name, digest))
            .await
        {
            Ok(meta) if meta.last_modified > cutoff => return Ok(None),
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        }
        if !self.dry_run {
            match self.registry.manifests.remove(name, digest).await {
                Ok(()) | Err(Error::ManifestUnknown { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(Removal::Manifest {
            repository: name.clone(),
            digest: digest.clone(),
        }))
    }

    /// Removes a layer link unless a push marked its blob since the listing; a push that marks it
    /// while the link goes finds it put back. `None` when it stays.
    async fn remove_link(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        blob: Option<&StoredBlob>,
        cutoff: SystemTime,
    ) -> Result<Option<Removal>> {
        if used_since(self.registry, digest, blob, cutoff).await? {
            return Ok(None);
        }
        if !self.dry_run {
            let storage = self.registry.storage();
            let key = paths::layer_link(name, digest);
            storage.delete(&key).await?;
            if used_since(self.registry, digest, blob, cutoff).await? {
                storage
                    .put(&key, bytes::Bytes::from(digest.to_string()))
                    .await?;
                return Ok(None);
            }
        }
        Ok(Some(Removal::Link {
            repository: name.clone(),
            digest: digest.clone(),
        }))
    }

    /// Removes a blob: its data or location record first (the blob is then unknown), then the
    /// bytes a location pointed at, then its marker.
    async fn remove_blob(&self, digest: &Digest, blob: &StoredBlob) -> Result<Removal> {
        let marker = paths::blob_used(digest);
        if blob.keys.is_empty() {
            // A marker whose blob never arrived.
            self.delete(&marker).await?;
            return Ok(Removal::Orphan {
                key: marker,
                bytes: 0,
            });
        }
        for key in blob.keys.iter().chain(&blob.target) {
            self.delete(key).await?;
        }
        self.delete(&marker).await?;
        if !self.dry_run {
            self.registry.blobs.forget(digest);
        }
        Ok(Removal::Blob {
            digest: digest.clone(),
            bytes: blob.size,
        })
    }

    /// Removes `data/<id>` objects that no blob location names and no upload is writing.
    async fn remove_orphans(
        &self,
        targets: &HashSet<String>,
        cutoff: SystemTime,
    ) -> Result<Vec<Removal>> {
        let storage = self.registry.storage();
        let listed: Vec<ObjectMeta> = storage.list_all(paths::DATA).try_collect().await?;
        let mut old = Vec::new();
        for meta in listed {
            if meta.last_modified <= cutoff && !targets.contains(&meta.key) {
                old.push(meta);
            }
        }
        let removed = concurrently(old, |meta| async move {
            let id = meta.key.rsplit('/').next().unwrap_or_default();
            if storage.exists(&paths::upload_session(id)).await? {
                return Ok(None);
            }
            self.remove_orphan(meta).await.map(Some)
        })
        .await?;
        Ok(removed.into_iter().flatten().collect())
    }

    async fn remove_orphan(&self, meta: ObjectMeta) -> Result<Removal> {
        self.delete(&meta.key).await?;
        Ok(Removal::Orphan {
            key: meta.key,
            bytes: meta.size,
        })
    }

    /// Ends uploads whose session was last written longer than `upload_max_age` ago, and removes
    /// what a crash left in upload folders (tails no session names) once older than the grace.
    async fn purge_uploads(&self, options: &GcOptions, now: SystemTime) -> Result<Vec<Removal>> {
        let since = |age| now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let (idle_since, cutoff) = (since(options.upload_max_age), since(options.grace));
        let ids = self.registry.storage().list(paths::UPLOADS).await?.prefixes;
        let removed = concurrently(ids, |id| self.purge_upload(id, idle_since, cutoff)).await?;
        Ok(removed.into_iter().flatten().collect())
    }

    async fn purge_upload(
        &self,
        id: String,
        idle_since: SystemTime,
        cutoff: SystemTime,
    ) -> Result<Vec<Removal>> {
        let storage = self.registry.storage();
        let mut removed = Vec::new();
        let objects = storage.list(&paths::upload(&id)).await?.objects;
        let session_key = paths::upload_session(&id);
        let Some(session_meta) = objects.iter().find(|o| o.key == session_key) else {
            // No session: leftovers of an upload that ended.
            for meta in objects {
                if meta.last_modified <= cutoff {
                    removed.push(self.remove_orphan(meta).await?);
                }
            }
            return Ok(removed);
        };
        let idle = session_meta.last_modified < idle_since;
        let session = storage
            .get_opt(&session_key)
            .await?
            .and_then(|bytes| serde_json::from_slice::<UploadSession>(&bytes).ok());
        let mut keep: Vec<String> = Vec::new();
        match &session {
            Some(s) => {
                if idle {
                    if !self.dry_run {
                        self.registry.uploads.end_session(s).await?;
                    }
                    removed.push(Removal::Upload {
                        id: id.clone(),
                        bytes: s.offset,
                    });
                }
                keep.push(session_key.clone());
                keep.extend(s.tail_key());
            }
            // Unreadable: the upload cannot go on; left alone until idle.
            None if idle => {}
            None => return Ok(removed),
        }
        for meta in objects {
            if !keep.contains(&meta.key) && (idle || meta.last_modified <= cutoff) {
                removed.push(self.remove_orphan(meta).await?);
            }
        }
        Ok(removed)
    }
}

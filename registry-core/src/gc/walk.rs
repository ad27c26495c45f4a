//! Reading what the store holds, and marking what each repository keeps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use futures::TryStreamExt;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::paths;
use crate::reference::{Reference, RepositoryName, Tag};
use crate::registry::Registry;
use crate::storage::{ObjectMeta, StorageExt};
use crate::stored::BlobLocation;
use crate::tags::TagChange;

use super::{GcOptions, KeptManifests, concurrently};

/// What `blobs/` holds for one digest (its keys are drawn again from the digest when needed:
/// a store of many blobs holds no key strings).
#[derive(Debug, Default, Clone)]
pub(super) struct StoredBlob {
    /// Whether its bytes are stored under `blobs/` ([`paths::blob_data`]).
    pub(super) data: bool,
    /// Whether a location record names where they are ([`paths::blob_location`]).
    pub(super) location: bool,
    /// Where a location record points.
    pub(super) target: Option<String>,
    pub(super) size: u64,
    pub(super) newest: Option<SystemTime>,
}

/// What `repositories/<name>/` holds.
#[derive(Debug, Default)]
pub(crate) struct Repo {
    pub(crate) tags: Vec<(Tag, SystemTime)>,
    /// When each tag was last pulled, where recorded.
    pub(super) pulled: HashMap<Tag, SystemTime>,
    /// Keys of tag changes, with when they happened (nanoseconds since the epoch).
    pub(super) changes: Vec<(u128, String)>,
    pub(crate) revisions: BTreeMap<Digest, SystemTime>,
    pub(super) layers: BTreeMap<Digest, SystemTime>,
    pub(super) referrers: HashMap<Digest, Vec<Digest>>,
}

/// Why a manifest is kept (the first reason found, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Tagged,
    History,
    Untagged,
    Young,
    Referrer,
}

impl KeptManifests {
    fn count(&mut self, why: Why) {
        let n = match why {
            Why::Tagged => &mut self.tagged,
            Why::History => &mut self.history,
            Why::Untagged => &mut self.untagged,
            Why::Young => &mut self.young,
            Why::Referrer => &mut self.referrers,
        };
        *n += 1;
    }
}

/// What one repository keeps, and why it keeps its manifests.
#[derive(Debug, Default)]
pub(super) struct Marked {
    pub(super) manifests: HashSet<Digest>,
    pub(super) blobs: HashSet<Digest>,
    pub(super) why: KeptManifests,
}

/// Reads `blobs/`: every digest's objects, size and newest modification.
pub(super) async fn list_blobs(registry: &Registry) -> Result<BTreeMap<Digest, StoredBlob>> {
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
            paths::BlobObject::Data => {
                blob.data = true;
                blob.size = meta.size;
            }
            paths::BlobObject::Location => {
                blob.location = true;
                if let Some(bytes) = storage.get_opt(&meta.key).await? {
                    let location: BlobLocation = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::storage(format!("corrupt record at {}: {e}", meta.key))
                    })?;
                    blob.size = location.size;
                    blob.target = Some(location.key);
                }
            }
            paths::BlobObject::Used => {}
        }
    }
    Ok(blobs)
}

impl StoredBlob {
    /// Its data or location record (none for a `used` marker whose blob never arrived).
    pub(super) fn keys(&self, digest: &Digest) -> Vec<String> {
        let data = self.data.then(|| paths::blob_data(digest));
        let location = self.location.then(|| paths::blob_location(digest));
        data.into_iter().chain(location).collect()
    }

    /// True when only a `used` marker is stored.
    pub(super) fn marker_only(&self) -> bool {
        !self.data && !self.location
    }
}

/// Reads `repositories/`: every repository's tags, revisions, layer links and referrers.
pub(crate) async fn list_repositories(
    registry: &Registry,
) -> Result<BTreeMap<RepositoryName, Repo>> {
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
            paths::RepositoryEntry::TagChange { nanos, .. } => repo.changes.push((nanos, key)),
            paths::RepositoryEntry::Pulled(tag) => {
                repo.pulled.insert(tag, last_modified);
            }
            paths::RepositoryEntry::Revision(d) => {
                repo.revisions.insert(d, last_modified);
            }
            paths::RepositoryEntry::Layer(d) => {
                repo.layers.insert(d, last_modified);
            }
            paths::RepositoryEntry::Referrer { subject, referrer } => {
                repo.referrers.entry(subject).or_default().push(referrer);
            }
            // Reindexing removes them.
            paths::RepositoryEntry::Distribution => {}
        }
    }
    Ok(repos)
}

/// The digests the repository's tag changes of the last [`GcOptions::history`] name.
async fn recent_history(
    registry: &Registry,
    repo: &Repo,
    options: &GcOptions,
) -> Result<Vec<Digest>> {
    let since = registry
        .config()
        .clock
        .now()
        .checked_sub(options.history)
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let recent: Vec<String> = repo
        .changes
        .iter()
        .filter(|(nanos, _)| *nanos >= since)
        .map(|(_, key)| key.clone())
        .collect();
    let storage = registry.storage();
    let changes = concurrently(recent, |key| async move {
        match storage.get_opt(&key).await? {
            Some(bytes) => serde_json::from_slice::<TagChange>(&bytes)
                .map(|c| c.from.into_iter().chain(c.to).collect::<Vec<_>>())
                .map_err(|e| Error::storage(format!("corrupt record at {key}: {e}"))),
            None => Ok(Vec::new()),
        }
    })
    .await?;
    Ok(changes.into_iter().flatten().collect())
}

/// When `name` is a cache repository, the time before which its content counts as unused, at
/// `now`.
pub(super) fn expiry(
    options: &GcOptions,
    name: &RepositoryName,
    now: SystemTime,
) -> Option<SystemTime> {
    let cache = options.cache.as_ref().filter(|c| c.covers(name))?;
    Some(
        now.checked_sub(cache.unused_for)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

/// Marks what one repository keeps: what its tags (but those in `untagged`) reach, what its
/// recent tag history names, and every manifest pushed within the grace period (or every
/// manifest, unless untagged ones go).
pub(super) async fn mark(
    registry: &Registry,
    name: &RepositoryName,
    repo: &Repo,
    untagged: &HashSet<Tag>,
    options: &GcOptions,
    cutoff: SystemTime,
) -> Result<Marked> {
    let expired = expiry(options, name, registry.config().clock.now());
    let live_tags: Vec<Tag> = repo
        .tags
        .iter()
        .filter(|(tag, modified)| expired.is_none_or(|t| *modified >= t) && !untagged.contains(tag))
        .map(|(tag, _)| tag.clone())
        .collect();
    let tagged = concurrently(live_tags, |tag| async move {
        Ok(registry.tags.get(name, &tag).await?.map(|r| r.digest))
    })
    .await?;
    // The roots, each with why it is kept; a manifest reached from several counts once, for
    // the first reason in this order.
    let mut roots: Vec<(Digest, Why)> = tagged
        .into_iter()
        .flatten()
        .map(|d| (d, Why::Tagged))
        .collect();
    // A cache's content comes back from upstream: its history protects nothing.
    if expired.is_none() {
        let named = recent_history(registry, repo, options).await?;
        roots.extend(named.into_iter().map(|d| (d, Why::History)));
    }
    for (digest, &modified) in &repo.revisions {
        let untagged_stay = !options.delete_untagged && expired.is_none_or(|t| modified >= t);
        if untagged_stay {
            roots.push((digest.clone(), Why::Untagged));
        } else if modified > cutoff {
            roots.push((digest.clone(), Why::Young));
        }
    }
    let mut marked = Marked::default();
    let mut pending = roots;
    while !pending.is_empty() {
        // A tag or index naming a manifest this repository lacks: nothing to keep.
        let batch: Vec<(Digest, Why)> = std::mem::take(&mut pending)
            .into_iter()
            .filter(|(d, _)| repo.revisions.contains_key(d) && marked.manifests.insert(d.clone()))
            .collect();
        for (_, why) in &batch {
            marked.why.count(*why);
        }
        let manifests = concurrently(batch, |(digest, why)| async move {
            let unreadable = |e: Error| {
                Error::storage(format!(
                    "garbage collection stopped before removing any blob: cannot read manifest \
                     {name}@{digest} ({e}); `registry scrub` checks the store"
                ))
            };
            let content = registry
                .get_manifest(name, &Reference::Digest(digest.clone()))
                .await
                .map_err(unreadable)?;
            let manifest = Manifest::parse(&content.bytes, Some(&content.info.media_type))
                .map_err(unreadable)?;
            Ok((digest, why, manifest))
        })
        .await?;
        for (digest, why, manifest) in manifests {
            marked
                .blobs
                .extend(manifest.blob_references().map(|d| d.digest.clone()));
            // An index's children are kept for its reason.
            pending.extend(manifest.manifests.iter().map(|d| (d.digest.clone(), why)));
            if options.keep_referrers
                && let Some(referrers) = repo.referrers.get(&digest)
            {
                pending.extend(referrers.iter().map(|d| (d.clone(), Why::Referrer)));
            }
        }
    }
    Ok(marked)
}

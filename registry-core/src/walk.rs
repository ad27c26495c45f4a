//! Reading what the store holds: every blob's objects under `blobs/` and every repository's
//! entries under `repositories/`, with their sizes and times. Garbage collection marks and
//! sweeps from these walks; usage reports read the repositories.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use futures::TryStreamExt;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths;
use crate::reference::{RepositoryName, Tag};
use crate::storage::{ObjectMeta, Storage, StorageExt};
use crate::stored::BlobLocation;

/// What `blobs/` holds for one digest (its keys are drawn again from the digest when needed:
/// a store of many blobs holds no key strings).
#[derive(Debug, Default, Clone)]
pub(crate) struct StoredBlob {
    /// Whether its bytes are stored under `blobs/` ([`paths::blob_data`]).
    pub(crate) data: bool,
    /// Whether a location record names where they are ([`paths::blob_location`]).
    pub(crate) location: bool,
    /// Where a location record points.
    pub(crate) target: Option<String>,
    pub(crate) size: u64,
    /// When its bytes, location record, `linked/` records or in-use mark last changed.
    pub(crate) newest: Option<SystemTime>,
    /// The removals collections announced ([`paths::blob_collecting`]), with when.
    pub(crate) collecting: Vec<(String, SystemTime)>,
    /// Its `linked/` records ([`paths::blob_linked`]): the repository each names, its key, and
    /// when it was written (read by [`list_blob`]; [`list_blobs`] keeps none).
    pub(crate) linked: Vec<(RepositoryName, String, SystemTime)>,
}

/// What `repositories/<name>/` holds.
#[derive(Debug, Default)]
pub(crate) struct Repo {
    pub(crate) tags: Vec<(Tag, SystemTime)>,
    /// When each tag was last pulled, where recorded.
    pub(crate) pulled: HashMap<Tag, SystemTime>,
    /// Keys of tag changes, with when they happened (nanoseconds since the epoch).
    pub(crate) changes: Vec<(u128, String)>,
    pub(crate) revisions: BTreeMap<Digest, SystemTime>,
    pub(crate) layers: BTreeMap<Digest, SystemTime>,
    pub(crate) referrers: HashMap<Digest, Vec<Digest>>,
}

/// Reads `blobs/`: every digest's objects, size and newest modification.
pub(crate) async fn list_blobs(storage: &dyn Storage) -> Result<BTreeMap<Digest, StoredBlob>> {
    let mut blobs: BTreeMap<Digest, StoredBlob> = BTreeMap::new();
    let mut listing = storage.list_all(paths::BLOBS);
    while let Some(meta) = listing.try_next().await? {
        // Objects of any other shape are for scrub to report.
        let Some((digest, kind)) = paths::parse_blob_key(&meta.key) else {
            continue;
        };
        // The `linked/` records count for the blob's age only: a store's worth of their keys
        // would be held for nothing (a removal lists the records of the blob it removes).
        let blob = blobs.entry(digest).or_default();
        if matches!(kind, paths::BlobObject::Linked(_)) {
            blob.newest = blob.newest.max(Some(meta.last_modified));
            continue;
        }
        blob.add(storage, meta, kind).await?;
    }
    Ok(blobs)
}

/// Reads one blob's bytes, location record, in-use mark and announcements, but not its
/// `linked/` records (one listing of one level: a blob many repositories link has as many
/// records): enough to date it. `None` when none is there.
pub(crate) async fn date_blob(
    storage: &dyn Storage,
    digest: &Digest,
) -> Result<Option<StoredBlob>> {
    let mut blob: Option<StoredBlob> = None;
    for meta in storage.list(&paths::blob_folder(digest)).await?.objects {
        if let Some((d, kind)) = paths::parse_blob_key(&meta.key)
            && d == *digest
        {
            blob.get_or_insert_default()
                .add(storage, meta, kind)
                .await?;
        }
    }
    Ok(blob)
}

/// Reads one blob's folder, `linked/` records included: `None` when it holds nothing.
pub(crate) async fn list_blob(
    storage: &dyn Storage,
    digest: &Digest,
) -> Result<Option<StoredBlob>> {
    let mut blob: Option<StoredBlob> = None;
    let mut listing = storage.list_all(&paths::blob_folder(digest));
    while let Some(meta) = listing.try_next().await? {
        if let Some((d, kind)) = paths::parse_blob_key(&meta.key)
            && d == *digest
        {
            blob.get_or_insert_default()
                .add(storage, meta, kind)
                .await?;
        }
    }
    Ok(blob)
}

impl StoredBlob {
    /// Takes one object of the blob's folder into account.
    async fn add(
        &mut self,
        storage: &dyn Storage,
        meta: ObjectMeta,
        kind: paths::BlobObject,
    ) -> Result<()> {
        if kind == paths::BlobObject::Collecting {
            // An announcement, not a use.
            self.collecting.push((meta.key, meta.last_modified));
            return Ok(());
        }
        self.newest = self.newest.max(Some(meta.last_modified));
        match kind {
            paths::BlobObject::Data => {
                self.data = true;
                self.size = meta.size;
            }
            paths::BlobObject::Location => {
                self.location = true;
                if let Some(bytes) = storage.get_opt(&meta.key).await? {
                    let location: BlobLocation = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::storage(format!("corrupt record at {}: {e}", meta.key))
                    })?;
                    self.size = location.size;
                    self.target = Some(location.key);
                }
            }
            paths::BlobObject::Linked(repo) => {
                self.linked.push((repo, meta.key, meta.last_modified))
            }
            paths::BlobObject::Used | paths::BlobObject::Collecting => {}
        }
        Ok(())
    }

    /// Its data or location record (none for a `used` marker whose blob never arrived).
    pub(crate) fn keys(&self, digest: &Digest) -> Vec<String> {
        let data = self.data.then(|| paths::blob_data(digest));
        let location = self.location.then(|| paths::blob_location(digest));
        data.into_iter().chain(location).collect()
    }

    /// True when only a `used` marker is stored.
    pub(crate) fn marker_only(&self) -> bool {
        !self.data && !self.location
    }
}

/// Reads `repositories/`: every repository's tags, revisions, layer links and referrers.
pub(crate) async fn list_repositories(
    storage: &dyn Storage,
) -> Result<BTreeMap<RepositoryName, Repo>> {
    read_repositories(storage, paths::REPOSITORIES).await
}

/// Reads one repository (its folder's listing includes the repositories nested in it, which are
/// left out).
pub(crate) async fn list_repository(storage: &dyn Storage, name: &RepositoryName) -> Result<Repo> {
    let mut repos = read_repositories(storage, &paths::repository(name)).await?;
    Ok(repos.remove(name).unwrap_or_default())
}

async fn read_repositories(
    storage: &dyn Storage,
    prefix: &str,
) -> Result<BTreeMap<RepositoryName, Repo>> {
    let mut repos: BTreeMap<RepositoryName, Repo> = BTreeMap::new();
    let mut listing = storage.list_all(prefix);
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

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
    /// When its bytes, location record, links or in-use mark last changed.
    pub(crate) newest: Option<SystemTime>,
    /// The removals collections announced ([`paths::blob_collecting`]), with when.
    pub(crate) collecting: Vec<(String, SystemTime)>,
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
        let blob = blobs.entry(digest).or_default();
        if kind == paths::BlobObject::Collecting {
            // An announcement, not a use.
            blob.collecting.push((meta.key, meta.last_modified));
            continue;
        }
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
            paths::BlobObject::Used | paths::BlobObject::Collecting => {}
        }
    }
    Ok(blobs)
}

impl StoredBlob {
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

//! Reindexing: moves a store written before the listing index or the collection records (or by
//! distribution, the `registry` image) to them. Every link gets its blob's `linked/` record
//! ([`paths::blob_linked`], which incremental garbage collection reads), every legacy tag link becomes a tag record (its time of move taken
//! from the link's age), every revision link holding a digest alone (distribution's) is rewritten
//! as ours with the manifest's subject indexed for the referrers API, distribution's tag indexes
//! and upload state go, every repository holding a manifest gets its catalog entry (and entries
//! of repositories holding none go), then the index version is written. Idempotent, and safe
//! while the registry serves: a tag record is written only where none is, before its legacy link
//! goes. One way: distribution no longer sees the tags once they are records.

use std::collections::HashSet;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::index::INDEX_VERSION;
use crate::paths::{self, RepositoryEntry};
use crate::reference::{RepositoryName, Tag};
use crate::registry::Registry;
use crate::storage::StorageExt;
use crate::tags::{TagRecord, parse_digest_link, record_bytes};

/// What a reindexing found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Repositories holding at least one manifest.
    pub repositories: u64,
    /// Legacy tag links moved to tag records.
    pub tags_moved: u64,
    /// Catalog entries written or removed.
    pub catalog_changes: u64,
    /// Revision links distribution wrote, rewritten as ours.
    pub links_adopted: u64,
    /// Links (layers and manifest revisions) whose blob's `linked/` record was written.
    pub links_recorded: u64,
}

/// A legacy tag link found by the walk: its repository, tag, key and age in seconds.
type LegacyTag = (RepositoryName, Tag, String, u64);

/// Whether the store still needs [`reindex`]: it was written before the listing index or the
/// collection records.
pub async fn needed(registry: &Registry) -> Result<bool> {
    Ok(!registry.index.records(&**registry.storage()).await?)
}

/// Whether the store was written before the listing index: until [`reindex`] runs, listings
/// walk it (the collection records alone missing only make garbage collection walk it).
pub async fn listing_needed(registry: &Registry) -> Result<bool> {
    registry.index.legacy(&**registry.storage()).await
}

/// Links whose `linked/` records are written at once.
const RECORDS_AT_ONCE: usize = 512;

/// Writes the `linked/` record of each link in `links` (16 at a time), and empties it.
async fn record_links(
    registry: &Registry,
    links: &mut Vec<(RepositoryName, crate::digest::Digest)>,
) -> Result<()> {
    let storage = registry.storage();
    futures::stream::iter(links.drain(..))
        .map(|(repo, digest)| async move {
            storage
                .put(&paths::blob_linked(&digest, &repo, "reindex"), Bytes::new())
                .await
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// Moves a store written before the listing index to it (see the module documentation). Safe to
/// run while the registry serves, and again.
pub async fn reindex(registry: &Registry) -> Result<ReindexReport> {
    let storage = registry.storage();
    let mut holding: HashSet<RepositoryName> = HashSet::new();
    let mut legacy: Vec<LegacyTag> = Vec::new();
    let mut revisions: Vec<(RepositoryName, crate::digest::Digest)> = Vec::new();
    let mut leftovers: Vec<String> = Vec::new();
    let mut links = Vec::new();
    let mut links_recorded = 0;
    let mut listing = storage.list_all(paths::REPOSITORIES);
    while let Some(meta) = listing.try_next().await? {
        if links.len() >= RECORDS_AT_ONCE {
            links_recorded += links.len() as u64;
            record_links(registry, &mut links).await?;
        }
        match paths::parse_repository_key(&meta.key) {
            Some((name, RepositoryEntry::Revision(digest))) => {
                holding.insert(name.clone());
                links.push((name.clone(), digest.clone()));
                revisions.push((name, digest));
            }
            Some((name, RepositoryEntry::Layer(digest))) => links.push((name, digest)),
            Some((_, RepositoryEntry::Distribution)) => leftovers.push(meta.key),
            Some((name, RepositoryEntry::LegacyTag(tag))) => {
                let moved = meta
                    .last_modified
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                legacy.push((name, tag, meta.key, moved));
            }
            _ => {}
        }
    }
    drop(listing);
    links_recorded += links.len() as u64;
    record_links(registry, &mut links).await?;
    let tags_moved = legacy.len() as u64;
    futures::stream::iter(legacy)
        .map(|(repo, tag, key, moved)| async move {
            let record_key = paths::tag(&repo, &tag);
            if !storage.exists(&record_key).await?
                && let Some(bytes) = storage.get_opt(&key).await?
            {
                let record = TagRecord {
                    moved_nanos: 0,
                    digest: parse_digest_link(&key, &bytes)?,
                    moved,
                };
                storage.put(&record_key, record_bytes(&record)?).await?;
            }
            storage.delete(&key).await?;
            Ok::<_, Error>(())
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    let adopted: Vec<bool> = futures::stream::iter(revisions)
        .map(|(repo, digest)| async move { registry.manifests.adopt(&repo, &digest).await })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let links_adopted = adopted.into_iter().filter(|a| *a).count() as u64;
    futures::stream::iter(leftovers)
        .map(|key| async move { storage.delete(&key).await })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    let catalog_changes = registry.catalog.reconcile(&holding).await? as u64;
    storage
        .put(
            paths::INDEX_VERSION,
            Bytes::from_static(INDEX_VERSION.as_bytes()),
        )
        .await?;
    storage
        .put(paths::COLLECTION_RECORDS, Bytes::from_static(b"1"))
        .await?;
    registry.index.indexed();
    Ok(ReindexReport {
        repositories: holding.len() as u64,
        tags_moved,
        catalog_changes,
        links_adopted,
        links_recorded,
    })
}

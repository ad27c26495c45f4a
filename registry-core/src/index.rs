//! Whether the store keeps the listing index (tag records and catalog entries), asked of storage
//! once per process; the parts that read or write the index consult it.

use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;

use crate::error::Result;
use crate::paths;
use crate::storage::{Storage, StorageExt};

/// The version of the index this code keeps ([`paths::INDEX_VERSION`] holds it).
pub const INDEX_VERSION: &str = "1";

/// Whether the store keeps the index. A store written before it keeps its tags at legacy links
/// and has no catalog entries: it is read the old way (legacy links too, the catalog by walking
/// the repositories) until `registry reindex` (or [`crate::reindex::reindex`]) moves it.
#[derive(Debug, Default)]
pub(crate) struct IndexState {
    /// 0: not known yet; 1: legacy; 2: indexed.
    state: AtomicU8,
    /// Whether the store keeps collection records ([`paths::COLLECTION_RECORDS`]), as `state`.
    records: AtomicU8,
    /// The registry may write (the version of a fresh store).
    writable: bool,
}

impl IndexState {
    pub fn new(writable: bool) -> IndexState {
        IndexState {
            state: AtomicU8::new(0),
            records: AtomicU8::new(0),
            writable,
        }
    }

    /// True when the store was written before the index and is not reindexed yet. Asked of
    /// storage once per process: a fresh store (no repository yet) is marked indexed at once.
    pub async fn legacy(&self, storage: &dyn Storage) -> Result<bool> {
        match self.state.load(Ordering::Relaxed) {
            1 => return Ok(true),
            2 => return Ok(false),
            _ => {}
        }
        let legacy = if storage.exists(paths::INDEX_VERSION).await? {
            false
        } else if self.writable && storage.list(paths::REPOSITORIES).await?.prefixes.is_empty() {
            storage
                .put(
                    paths::INDEX_VERSION,
                    Bytes::from_static(INDEX_VERSION.as_bytes()),
                )
                .await?;
            storage
                .put(paths::COLLECTION_RECORDS, Bytes::from_static(b"1"))
                .await?;
            self.records.store(2, Ordering::Relaxed);
            false
        } else {
            true
        };
        self.state
            .store(if legacy { 1 } else { 2 }, Ordering::Relaxed);
        Ok(legacy)
    }

    /// The store was just reindexed.
    pub fn indexed(&self) {
        self.state.store(2, Ordering::Relaxed);
        self.records.store(2, Ordering::Relaxed);
    }

    /// True when the store records, for every link, which repositories link each blob and what
    /// a collection must look at ([`crate::candidates`]): written on a fresh store, or by
    /// reindexing one written before. Asked of storage once per process.
    pub async fn records(&self, storage: &dyn Storage) -> Result<bool> {
        if self.legacy(storage).await? {
            return Ok(false);
        }
        match self.records.load(Ordering::Relaxed) {
            1 => return Ok(false),
            2 => return Ok(true),
            _ => {}
        }
        let kept = storage.exists(paths::COLLECTION_RECORDS).await?;
        self.records
            .store(if kept { 2 } else { 1 }, Ordering::Relaxed);
        Ok(kept)
    }
}

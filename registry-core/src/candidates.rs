//! What garbage collection must look at, recorded by the writes that may leave garbage, so that a
//! collection reads what changed instead of the whole store.
//!
//! Every write records before it is made, in the store itself, with keys unique to that write
//! (replicas need no coordination, and a crash after the record leaves at worst a record of
//! nothing):
//!
//! - a repository that gains a link (a blob pushed or mounted, a manifest stored), loses a
//!   manifest or moves a tag gets a repository candidate ([`paths::repository_candidate`]):
//!   something in it may be garbage once the grace period is past. A busy repository costs one
//!   record per [`crate::RegistryConfig::touch_interval`] per process: a write within that time
//!   of the last record is covered by it, since a collection drops a record only once it is older
//!   than the grace period (which exceeds the interval) and found nothing young in the repository;
//! - a link made gets, first, a `linked/<repository>/<id>` record of the blob
//!   ([`paths::blob_linked`]): which repositories to ask before removing the bytes. One per
//!   write, so that a collection removing the stale records it listed never removes the record
//!   of a push that linked the blob again since (it asks the repositories, and removes records,
//!   only under the announced removal of the bytes);
//! - a link removed (a manifest deleted, a blob deleted, a collection's sweep), and new bytes
//!   stored (a blob upload completed, a manifest's bytes written: a crash before their link
//!   would leave them unlinked), get, first, a blob candidate ([`paths::blob_candidate`]): the
//!   bytes may be garbage.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;

use crate::clock::SharedClock;
use crate::digest::Digest;
use crate::error::Result;
use crate::paths::{self, Candidate};
use crate::reference::RepositoryName;
use crate::storage::{ObjectMeta, Storage};

/// Writes candidate records and `linked/` records; see the module documentation.
pub(crate) struct Candidates {
    storage: Arc<dyn Storage>,
    clock: SharedClock,
    /// When this process last recorded each repository.
    recent: quick_cache::sync::Cache<RepositoryName, SystemTime>,
    /// How long a repository's record covers this process's later writes (`None`: not at all).
    interval: Option<Duration>,
}

impl std::fmt::Debug for Candidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidates")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The candidate records a collection found: by repository and by blob, each with its keys and
/// their times.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    pub(crate) repositories: std::collections::BTreeMap<RepositoryName, Vec<ObjectMeta>>,
    pub(crate) blobs: std::collections::BTreeMap<Digest, Vec<ObjectMeta>>,
}

impl Candidates {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        clock: SharedClock,
        interval: Option<Duration>,
    ) -> Candidates {
        Candidates {
            storage,
            clock,
            recent: quick_cache::sync::Cache::new(16 * 1024),
            interval,
        }
    }

    /// Records that something in `name` may become garbage (unless this process did so within
    /// its interval).
    pub(crate) async fn repository(&self, name: &RepositoryName) -> Result<()> {
        let now = self.clock.now();
        if let (Some(interval), Some(at)) = (self.interval, self.recent.get(name))
            && now.duration_since(at).is_ok_and(|age| age < interval)
        {
            return Ok(());
        }
        let key = paths::repository_candidate(name, nanos(now), &nonce());
        self.storage.put(&key, Bytes::new()).await?;
        self.recent.insert(name.clone(), now);
        Ok(())
    }

    /// Records, before `name` links the blob, that it does (and that the repository changed).
    pub(crate) async fn linking(&self, name: &RepositoryName, digest: &Digest) -> Result<()> {
        self.repository(name).await?;
        Ok(self
            .storage
            .put(&paths::blob_linked(digest, name, &nonce()), Bytes::new())
            .await?)
    }

    /// Records that the blob's bytes may be garbage: before a link to it goes, and before new
    /// bytes are stored (a crash before their link would leave them unlinked).
    pub(crate) async fn blob(&self, digest: &Digest) -> Result<()> {
        let key = paths::blob_candidate(digest, nanos(self.clock.now()), &nonce());
        Ok(self.storage.put(&key, Bytes::new()).await?)
    }

    /// Every candidate record in the store.
    pub(crate) async fn list(&self) -> Result<Listed> {
        let mut listed = Listed::default();
        let mut listing = self.storage.list_all(paths::COLLECTION);
        while let Some(meta) = listing.try_next().await? {
            match paths::parse_candidate_key(&meta.key) {
                Some(Candidate::Repository(name)) => {
                    listed.repositories.entry(name).or_default().push(meta)
                }
                Some(Candidate::Blob(digest)) => listed.blobs.entry(digest).or_default().push(meta),
                None => {}
            }
        }
        Ok(listed)
    }
}

fn nanos(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

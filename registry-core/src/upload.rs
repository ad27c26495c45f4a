//! Upload sessions: the state of a blob upload that spans many requests, saved in storage after
//! every chunk so that any process sharing the storage can continue it, and the lock that lets
//! one request at a time of this process work on an upload.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::paths;
use crate::reference::RepositoryName;
use crate::storage::{MultipartId, PartId};

/// An upload's state, stored as JSON at [`crate::paths::upload_session`].
///
/// It is replaced whole after each chunk, and every object it names is written once and never
/// changed: each part by a receipt naming exactly the bytes stored (the backend refuses to
/// assemble a part replaced since), the tail at a key holding its own SHA-256. So whichever of two
/// racing requests saves last leaves a session whose parts, tail, offset and hash all describe the
/// same bytes; the loser's part or tail is orphaned and freed when the upload ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadSession {
    /// The session id, also the last component of the upload URL.
    pub id: String,
    /// The repository the upload belongs to.
    pub repository: RepositoryName,
    /// The storage multipart upload receiving the bytes, once one was needed.
    pub multipart: Option<MultipartId>,
    /// Receipts of the parts stored so far, in order.
    pub parts: Vec<PartId>,
    /// Bytes received so far, parts and tail.
    pub offset: u64,
    /// How many of the last bytes received are kept aside in the tail ([`UploadSession::tail_key`])
    /// because they are too few to be a part yet ([`crate::Capabilities::part_size`]).
    #[serde(default)]
    pub tail: u64,
    /// The SHA-256 of the tail's bytes, part of its key: a tail is written once, and read back
    /// only if it still hashes to this. `None` for no tail (or one written before tails were
    /// checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_digest: Option<Digest>,
    /// The hash of the bytes received so far ([`crate::Digester::state`]), hex-encoded.
    pub hash_state: String,
    /// When the upload started, in seconds since the Unix epoch.
    pub started_at: u64,
}

impl UploadSession {
    /// Where the tail is stored, when there is one.
    pub fn tail_key(&self) -> Option<String> {
        (self.tail > 0)
            .then(|| paths::upload_tail(&self.id, self.offset, self.tail_digest.as_ref()))
    }
}

/// What a client learns about an upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The session id.
    pub id: String,
    /// Bytes received so far: the next chunk must start here.
    pub offset: u64,
}

impl From<&UploadSession> for UploadStatus {
    fn from(s: &UploadSession) -> Self {
        UploadStatus {
            id: s.id.clone(),
            offset: s.offset,
        }
    }
}

/// One lock per upload in progress in this process: a request that writes to an upload (a chunk,
/// its completion, its cancellation) holds it from reading the session to saving it, so that the
/// requests of one process never race on an upload. Waiting for it holds no thread. Requests
/// through other processes sharing the storage are not serialized by it: the session's design
/// (see [`UploadSession`]) keeps them harmless.
#[derive(Debug, Default)]
pub(crate) struct UploadLocks {
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// An upload's lock, held until dropped.
#[derive(Debug)]
pub(crate) struct UploadGuard {
    locks: Arc<UploadLocks>,
    id: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl UploadLocks {
    /// Waits for the lock of upload `id`.
    pub async fn lock(self: &Arc<Self>, id: &str) -> UploadGuard {
        let mutex = self
            .map()
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        UploadGuard {
            locks: self.clone(),
            id: id.to_owned(),
            guard: Some(mutex.lock_owned().await),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.guard = None;
        let mut map = self.locks.map();
        // Nobody waits when the map holds the only reference left: forget the upload.
        if map.get(&self.id).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_request_at_a_time_per_upload() {
        let locks = Arc::new(UploadLocks::default());
        let first = locks.lock("a").await;
        let other = locks.lock("b").await;
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { drop(locks.lock("a").await) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "two holders of one upload");
        drop(first);
        waiting.await.unwrap();
        drop(other);
        assert!(locks.map().is_empty(), "locks of ended requests are kept");
    }
}

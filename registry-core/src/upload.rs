//! Upload sessions: the state of a blob upload that spans many requests, saved in storage after
//! every chunk so that any process sharing the storage can continue it.

use serde::{Deserialize, Serialize};

use crate::reference::RepositoryName;
use crate::storage::{MultipartId, PartId};

/// An upload's state, stored as JSON at [`crate::paths::upload_session`].
///
/// It is replaced whole after each chunk. Two requests racing on one session each write a complete
/// state whose parts, offset and hash agree with each other, so whichever lands last is consistent;
/// the loser's part is orphaned and freed when the upload ends.
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
    /// How many of the last bytes received are kept aside at [`crate::paths::upload_tail`] (at
    /// `offset`) because they are too few to be a part yet ([`crate::Storage::part_size`]).
    #[serde(default)]
    pub tail: u64,
    /// The hash of the bytes received so far ([`crate::Digester::state`]), hex-encoded.
    pub hash_state: String,
    /// When the upload started, in seconds since the Unix epoch.
    pub started_at: u64,
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

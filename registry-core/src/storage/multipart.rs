//! [`Multipart`]: assembling one object from parts stored one at a time, possibly by different
//! processes. The registry builds every blob this way: an upload's chunks become parts, and its
//! completion the blob.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ByteStream, StorageError};

/// The id of a multipart upload, as the backend chose it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultipartId(pub String);

/// The receipt a backend gives for a stored part, to be handed back at completion.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartId(pub String);

/// How a backend wants the parts of a multipart upload cut, for stores that hold each part in one
/// request of known length (S3 and its kin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSize {
    /// Every part except the last must hold at least this many bytes (5 MiB on S3).
    pub min: u64,
    /// The size the registry cuts parts to: the memory one part in flight costs.
    pub target: u64,
    /// Parts of one upload stored at once (at least 1), while the next one gathers: an upload
    /// holds up to `in_flight + 1` parts in memory, and a push runs at up to `in_flight` times
    /// the speed of one part request.
    pub in_flight: usize,
}

/// Multipart uploads: an object made of parts, invisible until completed. Every method is safe
/// to call concurrently, from many processes for backends shared between them.
#[async_trait]
pub trait Multipart: Send + Sync {
    /// Starts a multipart upload that will produce `key` when completed. Nothing is visible at
    /// `key` until [`Multipart::complete_multipart`] returns.
    async fn create_multipart(&self, key: &str) -> Result<MultipartId, StorageError>;

    /// Stores one part of an upload from a stream. `part_idx` counts from 0; putting the same index
    /// again replaces that part. Parts may come from different processes. Once this returns the part
    /// survives a crash. An unknown id: [`StorageError::NotFound`]. A stream error fails the call
    /// and leaves the upload as if the part had not been sent.
    async fn put_part(
        &self,
        key: &str,
        id: &MultipartId,
        part_idx: usize,
        data: ByteStream,
    ) -> Result<PartId, StorageError>;

    /// Completes an upload: `key` becomes the parts' concatenation, in the order given, atomically.
    /// Zero parts make an empty object. The upload's id is then gone. An unknown id:
    /// [`StorageError::NotFound`].
    async fn complete_multipart(
        &self,
        key: &str,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<(), StorageError>;

    /// Abandons an upload and frees its parts. An unknown id is not an error.
    async fn abort_multipart(&self, key: &str, id: &MultipartId) -> Result<(), StorageError>;
}

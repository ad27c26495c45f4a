//! What is known about stored content without reading it: where a blob's bytes are, and what a
//! manifest revision is. Kept apart so that the caches and the parts that own this content depend
//! on it, not on each other.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Where a blob's bytes are stored: at its own key, or where a streamed upload left them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlobLocation {
    /// The storage key holding the bytes.
    pub key: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// What is known about a stored manifest without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// Digest of the stored bytes.
    pub digest: Digest,
    /// Media type to serve it with.
    pub media_type: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// The manifest's subject, if it has one.
    pub subject: Option<Digest>,
}

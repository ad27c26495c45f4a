//! The one error type of the core: what went wrong with an input, with the stored data, or with
//! the storage backend underneath. The HTTP adapter maps each variant to an OCI error code in one
//! table; nothing here knows about status codes.

use crate::digest::{Digest, InvalidDigest};
use crate::storage::StorageError;

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a registry operation can fail with.
///
/// Storage backends fail with their own [`StorageError`], carried here as [`Error::Storage`];
/// the registry logic turns a missing key into the domain error that fits (blob unknown,
/// manifest unknown…).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A digest string does not follow `algorithm:encoded`, or its algorithm is not supported.
    #[error("invalid digest {digest:?}: {reason}")]
    DigestInvalid {
        /// The rejected text.
        digest: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The bytes received do not hash to the digest the client announced.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// The digest the client announced.
        expected: Digest,
        /// The digest of what was received.
        actual: Digest,
    },
    /// A repository name does not follow the distribution-spec grammar.
    #[error("invalid repository name {name:?}")]
    NameInvalid {
        /// The rejected name.
        name: String,
    },
    /// The repository has no content at all.
    #[error("repository {name} is not known")]
    NameUnknown {
        /// The repository asked for.
        name: String,
    },
    /// A tag does not follow the tag grammar.
    #[error("invalid tag {tag:?}")]
    TagInvalid {
        /// The rejected tag.
        tag: String,
    },
    /// The blob is not in the repository.
    #[error("blob {digest} is not known to this repository")]
    BlobUnknown {
        /// The blob asked for.
        digest: Digest,
    },
    /// No upload session has this id (never started, finished, cancelled or purged).
    #[error("upload {id} is not known")]
    BlobUploadUnknown {
        /// The session id asked for.
        id: String,
    },
    /// The upload request is malformed or its body length does not match what it announced.
    #[error("invalid upload: {reason}")]
    BlobUploadInvalid {
        /// What was wrong.
        reason: String,
    },
    /// A chunk did not start where the upload stands.
    #[error("chunk starts at {requested}, the upload has {current} bytes")]
    ChunkOutOfOrder {
        /// Where the chunk claimed to start.
        requested: u64,
        /// How many bytes the upload holds.
        current: u64,
    },
    /// The manifest is malformed, of an unsupported kind, or inconsistent with its request.
    #[error("invalid manifest: {reason}")]
    ManifestInvalid {
        /// What was wrong.
        reason: String,
    },
    /// The manifest is larger than the configured limit.
    #[error("manifest of {size} bytes exceeds the limit of {limit} bytes")]
    ManifestTooLarge {
        /// Size received or announced.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The manifest references a blob or child manifest the repository does not hold.
    #[error("manifest references {digest}, which this repository does not hold")]
    ManifestBlobUnknown {
        /// The missing reference.
        digest: Digest,
    },
    /// No manifest for this tag or digest.
    #[error("manifest {reference} is not known")]
    ManifestUnknown {
        /// The tag or digest asked for.
        reference: String,
    },
    /// A restore named a digest the tag's history lacks, or the tag has nothing to go back to.
    #[error("cannot restore {tag}: {reason}")]
    NotInHistory {
        /// The repository and tag.
        tag: String,
        /// Why.
        reason: String,
    },
    /// Garbage collection is removing the bytes a push writes or names at this very moment; the
    /// push succeeds if tried again.
    #[error("{digest} is being removed by garbage collection: push it again")]
    BeingCollected {
        /// The blob or manifest.
        digest: Digest,
    },
    /// An admission rule ([`crate::admission::Admission`]) refused the change.
    #[error("{reason}")]
    Denied {
        /// The rule's reason, for the client.
        reason: String,
    },
    /// The repository is served by a read-through source ([`crate::source::Source`]): pushes and
    /// deletes into it are refused.
    #[error("{name} is {source_of}: pushes and deletes are refused")]
    Sourced {
        /// The repository.
        name: String,
        /// What serves it, as the source describes itself (`a pull-through cache of …`).
        source_of: String,
    },
    /// A read-through source could not provide what was asked, with nothing stored to serve
    /// instead.
    #[error("{detail}")]
    Upstream {
        /// What kind of failure, for the client's error code.
        failure: UpstreamFailure,
        /// What the source was told, naming it (never with credentials).
        detail: String,
    },
    /// The storage underneath failed, or has no object where the registry expected one.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How a read-through source failed, for [`Error::Upstream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamFailure {
    /// The source has no such manifest.
    ManifestUnknown,
    /// The source has no such blob.
    BlobUnknown,
    /// The source asks to slow down.
    RateLimited,
    /// The source is unreachable, refused, or failed mid-way.
    Unavailable,
}

impl From<InvalidDigest> for Error {
    fn from(e: InvalidDigest) -> Error {
        Error::DigestInvalid {
            digest: e.text,
            reason: e.reason,
        }
    }
}

impl Error {
    /// A storage failure with `source` as its cause: a corrupt record, a backend's own error.
    pub fn storage(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Storage(StorageError::backend(source))
    }

    /// True when storage has no object at the key asked for.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Storage(e) if e.is_not_found())
    }
}

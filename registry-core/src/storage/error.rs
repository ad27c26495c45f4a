//! [`StorageError`]: the four ways a backend can fail, and nothing of the registry's domain.

/// How a storage operation failed. The registry turns a missing key into the domain error that
/// fits (blob unknown, manifest unknown…); HTTP maps the rest (a bad range to 416, the others to
/// 503 or 501).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key does not exist.
    #[error("no object at {key}")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// A range that selects no byte of the object (see [`super::GetRange::resolve`]).
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable {
        /// The object's size in bytes.
        size: u64,
    },
    /// The backend cannot do this operation.
    #[error("operation not supported by this storage backend: {operation}")]
    Unsupported {
        /// The operation refused.
        operation: &'static str,
    },
    /// The backend failed: an I/O error, an unreachable service, a corrupt record.
    #[error("storage failure: {source}")]
    Backend {
        /// The backend's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    /// Wraps a backend's own error as [`StorageError::Backend`].
    pub fn backend(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StorageError::Backend {
            source: source.into(),
        }
    }

    /// True for a missing key.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }
}

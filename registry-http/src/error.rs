//! The errors of the HTTP adapter: [`ApiError`], what a request fails with, and the one table
//! from OCI error code to HTTP status and message (every failure reaches the client as
//! `{"errors":[{"code","message","detail"}]}`, the message followed by the reason, since that is
//! what docker, podman and skopeo print); and [`Error`], what setting the layer up fails
//! with (certificates, users, keys, rules).

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode};
use registry_core::Error as CoreError;
use registry_core::StorageError;
use registry_core::error::UpstreamFailure;

/// An OCI error code, from the distribution spec (plus the few distribution adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`
    BlobUploadUnknown,
    /// `DIGEST_INVALID`
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`
    ManifestUnknown,
    /// `NAME_INVALID`
    NameInvalid,
    /// `NAME_UNKNOWN`
    NameUnknown,
    /// `SIZE_INVALID`
    SizeInvalid,
    /// `UNAUTHORIZED`
    Unauthorized,
    /// `DENIED`
    Denied,
    /// `UNSUPPORTED`
    Unsupported,
    /// `TOOMANYREQUESTS`
    TooManyRequests,
    /// `RANGE_INVALID` (distribution's code for an unsatisfiable range)
    RangeInvalid,
    /// `PAGINATION_NUMBER_INVALID` (distribution's code for a bad `n`)
    PaginationNumberInvalid,
    /// `UNAVAILABLE`: the storage failed
    Unavailable,
    /// `UNKNOWN`: a bug
    Unknown,
}

impl ErrorCode {
    /// The code's string, default status and message: the table.
    pub fn describe(self) -> (&'static str, StatusCode, &'static str) {
        use ErrorCode::*;
        match self {
            BlobUnknown => (
                "BLOB_UNKNOWN",
                StatusCode::NOT_FOUND,
                "blob unknown to registry",
            ),
            BlobUploadInvalid => (
                "BLOB_UPLOAD_INVALID",
                StatusCode::BAD_REQUEST,
                "blob upload invalid",
            ),
            BlobUploadUnknown => (
                "BLOB_UPLOAD_UNKNOWN",
                StatusCode::NOT_FOUND,
                "blob upload unknown to registry",
            ),
            DigestInvalid => (
                "DIGEST_INVALID",
                StatusCode::BAD_REQUEST,
                "provided digest did not match uploaded content",
            ),
            ManifestBlobUnknown => (
                "MANIFEST_BLOB_UNKNOWN",
                StatusCode::BAD_REQUEST,
                "manifest references a manifest or blob unknown to registry",
            ),
            ManifestInvalid => (
                "MANIFEST_INVALID",
                StatusCode::BAD_REQUEST,
                "manifest invalid",
            ),
            ManifestUnknown => (
                "MANIFEST_UNKNOWN",
                StatusCode::NOT_FOUND,
                "manifest unknown to registry",
            ),
            NameInvalid => (
                "NAME_INVALID",
                StatusCode::BAD_REQUEST,
                "invalid repository name",
            ),
            NameUnknown => (
                "NAME_UNKNOWN",
                StatusCode::NOT_FOUND,
                "repository name not known to registry",
            ),
            SizeInvalid => (
                "SIZE_INVALID",
                StatusCode::BAD_REQUEST,
                "provided length did not match content length",
            ),
            Unauthorized => (
                "UNAUTHORIZED",
                StatusCode::UNAUTHORIZED,
                "authentication required",
            ),
            Denied => (
                "DENIED",
                StatusCode::FORBIDDEN,
                "requested access to the resource is denied",
            ),
            Unsupported => (
                "UNSUPPORTED",
                StatusCode::METHOD_NOT_ALLOWED,
                "the operation is unsupported",
            ),
            TooManyRequests => (
                "TOOMANYREQUESTS",
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests",
            ),
            RangeInvalid => (
                "RANGE_INVALID",
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalid content range",
            ),
            PaginationNumberInvalid => (
                "PAGINATION_NUMBER_INVALID",
                StatusCode::BAD_REQUEST,
                "invalid number of results requested",
            ),
            Unavailable => (
                "UNAVAILABLE",
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable, try again",
            ),
            Unknown => (
                "UNKNOWN",
                StatusCode::INTERNAL_SERVER_ERROR,
                "unknown error",
            ),
        }
    }
}

/// An error response: an OCI code, a status (the code's default unless overridden), a detail and
/// extra headers.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    status: StatusCode,
    detail: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the code's default status.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            status: code.describe().1,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// What the client is told.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same error with a header added to its response.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The OCI code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<registry_core::digest::InvalidDigest> for ApiError {
    fn from(e: registry_core::digest::InvalidDigest) -> Self {
        CoreError::from(e).into()
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        use ErrorCode::*;
        let detail = e.to_string();
        let (code, status) = match &e {
            CoreError::DigestInvalid { .. } | CoreError::DigestMismatch { .. } => {
                (DigestInvalid, None)
            }
            CoreError::NameInvalid { .. } => (NameInvalid, None),
            CoreError::NameUnknown { .. } => (NameUnknown, None),
            CoreError::TagInvalid { .. } | CoreError::ManifestInvalid { .. } => {
                (ManifestInvalid, None)
            }
            CoreError::BlobUnknown { .. } => (BlobUnknown, None),
            CoreError::BlobUploadUnknown { .. } => (BlobUploadUnknown, None),
            CoreError::BlobUploadInvalid { .. } => (BlobUploadInvalid, None),
            CoreError::ChunkOutOfOrder { .. } => {
                (BlobUploadInvalid, Some(StatusCode::RANGE_NOT_SATISFIABLE))
            }
            CoreError::ManifestTooLarge { .. } => {
                (SizeInvalid, Some(StatusCode::PAYLOAD_TOO_LARGE))
            }
            CoreError::ManifestBlobUnknown { .. } => (ManifestBlobUnknown, None),
            CoreError::ManifestUnknown { .. } | CoreError::NotInHistory { .. } => {
                (ManifestUnknown, None)
            }
            CoreError::Denied { .. } => (Denied, None),
            CoreError::BeingCollected { .. } => (Unavailable, None),
            CoreError::Sourced { .. } => (Unsupported, None),
            CoreError::Upstream { failure, .. } => match failure {
                UpstreamFailure::ManifestUnknown => (ManifestUnknown, None),
                UpstreamFailure::BlobUnknown => (BlobUnknown, None),
                UpstreamFailure::RateLimited => (TooManyRequests, None),
                _ => (Unavailable, Some(StatusCode::BAD_GATEWAY)),
            },
            CoreError::Storage(StorageError::RangeNotSatisfiable { .. }) => (RangeInvalid, None),
            CoreError::Storage(StorageError::Unsupported { .. }) => (Unsupported, None),
            // A key the registry expected and storage lacks is a fault of the store: 500.
            CoreError::Storage(StorageError::NotFound { .. }) => (Unknown, None),
            CoreError::Storage(_) => (Unavailable, None),
            _ => (Unknown, None),
        };
        let mut err = ApiError::new(code, detail);
        if let Some(status) = status {
            err = err.with_status(status);
        }
        if let CoreError::Storage(StorageError::RangeNotSatisfiable { size }) = e
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            err = err.with_header(http::header::CONTENT_RANGE, v);
        }
        err
    }
}

/// What setting the HTTP layer up can fail with: files that cannot be read, or say something
/// unusable. Requests fail with [`ApiError`]s instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An htpasswd entry that cannot be used.
    #[error("htpasswd {origin}line {line}: {reason}")]
    Htpasswd {
        /// The file, and a space, when the entries came from one.
        origin: String,
        /// The line, counting from 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// TLS certificates or keys that cannot be used.
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong with them.
        reason: String,
    },
    /// A key that cannot sign or verify tokens.
    #[error("token key: {reason}")]
    TokenKey {
        /// What is wrong with it.
        reason: String,
    },
    /// Access rules that name an unknown action or group.
    #[error("access rules: {reason}")]
    Policy {
        /// What is wrong with them.
        reason: String,
    },
    /// Trusted proxies that cannot be read.
    #[error("proxies: {reason}")]
    Proxy {
        /// What is wrong with them.
        reason: String,
    },
}

/// The detail of a 5xx answer, left in the response's extensions for the logging layer.
#[derive(Debug, Clone)]
pub struct ServerErrorDetail(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, _, message) = self.code.describe();
        // Clients print the message, not the detail: the reason goes in both.
        let message = match self.detail.as_str() {
            "" => message.to_owned(),
            detail if detail == message => message.to_owned(),
            detail => format!("{message}: {detail}"),
        };
        let body = serde_json::json!({
            "errors": [{ "code": code, "message": message, "detail": self.detail }]
        });
        let mut res = (self.status, axum::Json(body)).into_response();
        res.extensions_mut().insert(self.code);
        if self.status.is_server_error() {
            res.extensions_mut().insert(ServerErrorDetail(self.detail));
        }
        for (name, value) in self.headers {
            res.headers_mut().append(name, value);
        }
        res
    }
}

//! The core of an OCI distribution registry, usable without HTTP.
//!
//! - [`digest`]: content digests and a resumable streaming hash.
//! - [`reference`](mod@reference): repository names, tags and references, per the distribution-spec grammar.
//! - [`manifest`]: validation of the four manifest kinds and OCI artifacts.
//! - [`storage`]: the [`Storage`] trait that backends implement, and [`StorageExt`].
//! - [`paths`]: the storage layout, drawn once.
//! - [`upload`]: the state of an upload spanning many requests.
//! - [`registry`]: [`Registry`], every distribution operation over any [`Storage`]; its upload
//!   operations live in `uploads`, the hashing of bodies on their way into storage in `tap`.
//! - [`gc`]: garbage collection and upload purging, safe while pushes go on.
//! - [`scrub`]: re-hash every blob and check every link, reporting without repairing.
//! - [`error`]: the one [`Error`] type.
//! - `testsuite` (feature `testsuite`): the conformance suite every backend runs.

mod cache;
pub mod digest;
pub mod error;
pub mod gc;
pub mod manifest;
mod parts;
pub mod paths;
pub mod reference;
pub mod registry;
pub mod scrub;
pub mod storage;
mod tap;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod upload;
mod uploads;

pub use digest::{Algorithm, Digest, Digester};
pub use error::{Error, Result};
pub use manifest::{Descriptor, Manifest, ManifestKind};
pub use reference::{Reference, RepositoryName, Tag};
pub use registry::{
    BlobContent, BlobInfo, BlobLocation, ManifestContent, ManifestInfo, Page, Registry,
    RegistryConfig,
};
pub use storage::{
    ByteStream, GetRange, GetResult, ListResult, MultipartId, ObjectMeta, PartId, PartSize,
    Storage, StorageExt,
};
pub use upload::{UploadSession, UploadStatus};

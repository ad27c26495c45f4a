//! Storage backends for `registry-core`.
//!
//! - [`fs`]: [`FilesystemStorage`], objects as files under a root folder, crash-safe; every key
//!   resolved beneath the root's open folder, so a planted link never leads out of it.
//! - [`object`]: [`ObjectStorage`], any object store with multipart uploads; replicas may share
//!   one bucket. [`ranged`]: large blobs read with several ranged requests at once.
//! - [`s3`] (feature `s3`): `S3Options`, S3 and S3-compatible services (Ceph RGW, MinIO, Garage).
//! - [`gcs`] and [`azure`] (features `gcs`, `azure`): `GcsOptions` and `AzureOptions`, Google
//!   Cloud Storage and Azure Blob Storage through the same [`ObjectStorage`]. The three cloud
//!   features are on by default; without them the crate pulls in no HTTP client.
//! - [`memory`]: [`MemoryStorage`], everything in memory, for tests and ephemeral registries.
//!
//! - [`layout`]: [`OciLayout`], an OCI image layout directory to export to and import from, and
//!   `oci-archive` tars of one; not a `Storage`, but an origin and destination of
//!   `registry_core::transfer`.
//!
//! Each `Storage` passes `registry_core::storage_testsuite!`.

#[cfg(feature = "azure")]
pub mod azure;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
mod client;
pub mod fs;
#[cfg(feature = "gcs")]
pub mod gcs;
pub mod layout;
pub mod memory;
pub mod object;
pub mod ranged;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "azure")]
pub use azure::AzureOptions;
pub use fs::FilesystemStorage;
#[cfg(feature = "gcs")]
pub use gcs::GcsOptions;
pub use layout::OciLayout;
pub use memory::MemoryStorage;
pub use object::ObjectStorage;
#[cfg(feature = "s3")]
pub use s3::S3Options;

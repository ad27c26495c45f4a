//! Storage backends for `registry-core`.
//!
//! - [`fs`]: [`FilesystemStorage`], objects as files under a root folder, crash-safe; every key
//!   resolved beneath the root's open folder, so a planted link never leads out of it.
//! - [`object`]: [`ObjectStorage`], any object store with multipart uploads; replicas may share
//!   one bucket. [`ranged`]: large blobs read with several ranged requests at once.
//! - [`s3`]: [`S3Options`], S3 and S3-compatible services (Ceph RGW, MinIO, Garage).
//! - [`cloud`]: [`GcsOptions`] and [`AzureOptions`], Google Cloud Storage and Azure Blob Storage
//!   through the same [`ObjectStorage`].
//! - [`memory`]: [`MemoryStorage`], everything in memory, for tests and ephemeral registries.
//!
//! - [`layout`]: [`OciLayout`], an OCI image layout directory to export to and import from, and
//!   `oci-archive` tars of one; not a `Storage`, but an origin and destination of
//!   `registry_core::transfer`.
//!
//! Each `Storage` passes `registry_core::storage_testsuite!`.

pub mod cloud;
pub mod fs;
pub mod layout;
pub mod memory;
pub mod object;
pub mod ranged;
pub mod s3;
#[cfg(feature = "testing")]
pub mod testing;

pub use cloud::{AzureOptions, GcsOptions};
pub use fs::FilesystemStorage;
pub use layout::OciLayout;
pub use memory::MemoryStorage;
pub use object::ObjectStorage;
pub use s3::S3Options;

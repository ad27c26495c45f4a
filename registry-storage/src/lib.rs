//! Storage backends for `registry-core`.
//!
//! - [`fs`]: [`FilesystemStorage`], objects as files under a root folder, crash-safe.
//! - [`memory`]: [`MemoryStorage`], everything in memory, for tests and ephemeral registries.
//!
//! Each passes `registry_core::storage_testsuite!`.

pub mod fs;
pub mod memory;

pub use fs::FilesystemStorage;
pub use memory::MemoryStorage;

//! What the `Registry` test binaries share: bodies, names, a moto bucket per test, and the macros
//! that run a scenario on every backend.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use registry_core::{ByteStream, RepositoryName, Storage};

/// A request body of one chunk.
pub fn body(data: &[u8]) -> ByteStream {
    let data = Bytes::copy_from_slice(data);
    futures::stream::once(async move { Ok(data) }).boxed()
}

pub fn repo(name: &str) -> RepositoryName {
    name.parse().unwrap()
}

/// One moto server for the whole test binary; a bucket per test.
pub fn moto_bucket() -> Arc<dyn Storage> {
    static MOTO: std::sync::OnceLock<registry_storage::testing::MotoServer> =
        std::sync::OnceLock::new();
    let moto = MOTO.get_or_init(registry_storage::testing::MotoServer::start);
    let name = format!("registry-{}", uuid::Uuid::new_v4().simple());
    Arc::new(moto.bucket(&name).build().unwrap())
}

/// Runs one scenario on a memory store, a filesystem store, object_store's in-memory store (parts
/// of 4 to 8 bytes, so that small blobs cross part boundaries and tails) and moto over HTTP.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod object_store_memory {
            $(#[tokio::test] async fn $name() {
                let store = std::sync::Arc::new(object_store::memory::InMemory::new());
                let s = registry_storage::ObjectStorage::new(store, "").with_part_size(4, 8);
                crate::$name(std::sync::Arc::new(s)).await
            })*
        }
        mod moto {
            $(
                #[cfg_attr(not(has_moto), ignore = "skipped: moto_server is not installed (pip install 'moto[server]')")]
                #[tokio::test] async fn $name() { crate::$name(crate::common::moto_bucket()).await }
            )*
        }
        on_both_backends!($($name),*);
    };
}

/// Runs one scenario on a memory store and on a filesystem store.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { crate::$name(std::sync::Arc::new(registry_storage::MemoryStorage::new())).await })*
        }
        mod filesystem {
            $(#[tokio::test] async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                crate::$name(std::sync::Arc::new(registry_storage::FilesystemStorage::new(dir.path()).unwrap())).await
            })*
        }
    };
}

//! What the `Registry` test binaries share: bodies, names and a moto bucket per test.
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

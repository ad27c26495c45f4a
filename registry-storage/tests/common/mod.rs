//! What the `Registry` test binaries share: bodies, names, a moto bucket per test, and the macros
//! that run a scenario on every backend.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use registry_core::manifest::OCI_MANIFEST;
use registry_core::{ByteStream, Digest, Reference, Registry, RepositoryName, Storage};

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

/// One Azurite for the whole test binary; a container per test, blocks of 1 MiB.
pub fn azure_container() -> Arc<dyn Storage> {
    static AZURITE: std::sync::OnceLock<registry_storage::testing::Azurite> =
        std::sync::OnceLock::new();
    let azurite = AZURITE.get_or_init(registry_storage::testing::Azurite::start);
    let name = format!("registry-{}", uuid::Uuid::new_v4().simple());
    let options = registry_storage::AzureOptions {
        part_size: Some(1 << 20),
        ..azurite.container(&name)
    };
    Arc::new(options.build().unwrap())
}

/// Runs one scenario on a memory store, a filesystem store, object_store's in-memory store (parts
/// of 4 to 8 bytes, so that small blobs cross part boundaries and tails), moto over HTTP, and
/// Azurite over HTTP.
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
        mod azurite {
            $(
                #[cfg_attr(not(has_azurite), ignore = "skipped: azurite is not installed (npm install azurite)")]
                #[tokio::test] async fn $name() { crate::$name(crate::common::azure_container()).await }
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

/// A blob read whole.
pub async fn read(content: registry_core::BlobContent) -> Vec<u8> {
    content
        .stream
        .try_fold(Vec::new(), |mut acc, c| async move {
            acc.extend_from_slice(&c);
            Ok(acc)
        })
        .await
        .unwrap()
}

/// An image manifest of a config and layers (each a digest and the size its descriptor
/// declares), with an optional subject.
pub fn image_manifest(
    config: (&Digest, u64),
    layers: &[(&Digest, u64)],
    subject: Option<(&Digest, u64)>,
) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{n}}}"#))
        .collect();
    let subject = subject
        .map(|(s, n)| format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{s}","size":{n}}},"artifactType":"application/vnd.example.sig""#))
        .unwrap_or_default();
    let (config, size) = config;
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{size}}},"layers":[{}]{subject}}}"#,
        layers.join(",")
    )
    .into_bytes()
}

/// Pushes an image of a config and one layer under `tag`; its manifest digest and bytes.
pub async fn push_image(
    r: &Registry,
    a: &RepositoryName,
    tag: &str,
    seed: &str,
) -> (Digest, Vec<u8>) {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let layer = format!("layer of {seed}");
    let (cd, ld) = (Digest::of(config.as_bytes()), Digest::of(layer.as_bytes()));
    r.put_blob(a, &cd, body(config.as_bytes()), None)
        .await
        .unwrap();
    r.put_blob(a, &ld, body(layer.as_bytes()), None)
        .await
        .unwrap();
    let m = image_manifest(
        (&cd, config.len() as u64),
        &[(&ld, layer.len() as u64)],
        None,
    );
    let reference: Reference = tag.parse().unwrap();
    let info = r
        .put_manifest(a, &reference, Some(OCI_MANIFEST), Bytes::from(m.clone()))
        .await
        .unwrap();
    assert_eq!(info.digest, Digest::of(&m));
    (info.digest, m)
}

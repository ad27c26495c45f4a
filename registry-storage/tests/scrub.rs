//! Scrub: what it reports of corrupt bytes, dangling links and blob locations.
#![allow(clippy::unwrap_used)]

#[allow(unused_macros)]
mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{body, push_image, repo};
use registry_core::paths;
use registry_core::{Digest, Registry, RegistryConfig, Storage, StorageExt};
use registry_storage::MemoryStorage;

#[tokio::test]
async fn scrub_reports_corruption_and_dangling_links() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let (manifest, _) = push_image(&r, &a, "v1", "x").await;
    let clean = registry_core::scrub::scrub(&r).await.unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!((clean.blobs, clean.links), (3, 4));

    let layer = Digest::of(b"layer of x");
    s.put(&paths::blob_data(&layer), Bytes::from_static(b"tampered"))
        .await
        .unwrap();
    s.delete(&paths::blob_data(&manifest)).await.unwrap();
    s.put("blobs/sha256/zz/stray", Bytes::from_static(b"?"))
        .await
        .unwrap();
    let report = registry_core::scrub::scrub(&r).await.unwrap();
    use registry_core::scrub::Problem;
    assert!(
        report.problems.contains(&Problem::CorruptBlob {
            key: paths::blob_data(&layer),
            actual: Digest::of(b"tampered")
        }),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.contains(&Problem::DanglingLink {
            key: paths::manifest_link(&a, &manifest),
            target: paths::blob_data(&manifest)
        }),
        "{:?}",
        report.problems
    );
    assert!(report.problems.contains(&Problem::StrayObject {
        key: "blobs/sha256/zz/stray".into()
    }));
    s.delete(&paths::manifest_link(&a, &manifest))
        .await
        .unwrap();
    let report = registry_core::scrub::scrub(&r).await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::DanglingLink { key, .. } if *key == paths::tag(&a, &"v1".parse().unwrap()))),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .contains(&Problem::StaleListing { repository: a }),
        "the catalog lists a repository that holds no manifest: {:?}",
        report.problems
    );
}

/// On object stores a streamed blob is a location record: scrub hashes the bytes it points at,
/// and reports a record whose bytes are gone or corrupt.
#[tokio::test]
async fn scrub_follows_blob_locations() {
    let store = Arc::new(object_store::memory::InMemory::new());
    let s: Arc<dyn Storage> =
        Arc::new(registry_storage::ObjectStorage::new(store, "").with_part_size(4, 8));
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let data = b"streamed in parts of eight bytes";
    let d = Digest::of(data);
    let up = r.start_upload(&a).await.unwrap();
    r.complete_upload(&a, &up.id, &d, Some((body(data), None)))
        .await
        .unwrap();
    let location: serde_json::Value =
        serde_json::from_slice(&s.get_bytes(&paths::blob_location(&d)).await.unwrap()).unwrap();
    let location_key = location["key"].as_str().unwrap().to_owned();
    assert_eq!(location_key, paths::upload_data(&up.id));
    let clean = registry_core::scrub::scrub(&r).await.unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!((clean.blobs, clean.bytes), (1, data.len() as u64));

    use registry_core::scrub::Problem;
    s.put(&location_key, Bytes::from_static(b"tampered"))
        .await
        .unwrap();
    let report = registry_core::scrub::scrub(&r).await.unwrap();
    let corrupt = Problem::CorruptBlob {
        key: location_key.clone(),
        actual: Digest::of(b"tampered"),
    };
    assert_eq!(report.problems, [corrupt]);
    s.delete(&location_key).await.unwrap();
    let report = registry_core::scrub::scrub(&r).await.unwrap();
    let dangling = Problem::DanglingLink {
        key: paths::blob_location(&d),
        target: location_key,
    };
    assert!(report.problems.contains(&dangling), "{:?}", report.problems);
}

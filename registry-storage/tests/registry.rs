//! `Registry` over both local backends: every operation and its error paths.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{body, repo};
use futures::{StreamExt, TryStreamExt};
use registry_core::manifest::{OCI_INDEX, OCI_MANIFEST};
use registry_core::paths;
use registry_core::{
    ByteStream, Digest, Error, GetRange, Reference, Registry, RegistryConfig, RepositoryName,
    Storage, StorageExt,
};
use registry_storage::{FilesystemStorage, MemoryStorage};

async fn read(content: registry_core::BlobContent) -> Vec<u8> {
    content
        .stream
        .try_fold(Vec::new(), |mut acc, c| async move {
            acc.extend_from_slice(&c);
            Ok(acc)
        })
        .await
        .unwrap()
}

fn image_manifest(config: &Digest, layers: &[&Digest], subject: Option<&Digest>) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|d| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":1}}"#))
        .collect();
    let subject = subject
        .map(|s| format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{s}","size":1}},"artifactType":"application/vnd.example.sig""#))
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{}]{subject}}}"#,
        layers.join(",")
    )
    .into_bytes()
}

on_every_backend!(
    monolithic_blob_push,
    monolithic_push_with_wrong_digest_stores_nothing,
    monolithic_push_with_wrong_length_is_refused,
    chunked_upload,
    chunked_upload_with_wrong_digest_stores_nothing,
    sha512_digests_are_verified,
    unknown_and_foreign_uploads,
    cancelled_upload_is_gone,
    mounts,
    repositories_see_only_their_blobs,
    blob_bytes_are_stored_once,
    manifests_by_tag_and_digest,
    manifest_errors,
    lenient_reference_checks,
    index_children_must_exist,
    deleting_a_tagged_manifest_removes_its_tags,
    delete_tag_keeps_manifest,
    tag_listing,
    catalog,
    referrers,
    concurrent_pushes_of_one_blob_and_manifest,
    large_blobs_cross_parts,
);

/// Not on moto, which answers a part or completion for a finished upload with 500 where S3 says
/// `NoSuchUpload` (what the retry relies on). Ceph's replica tests cover S3 itself.
mod crash_retry {
    on_both_backends!(completion_interrupted_by_a_crash_can_be_retried);
    mod object_store_memory {
        #[tokio::test]
        async fn completion_interrupted_by_a_crash_can_be_retried() {
            let store = std::sync::Arc::new(object_store::memory::InMemory::new());
            let s = registry_storage::ObjectStorage::new(store, "").with_part_size(4, 8);
            crate::completion_interrupted_by_a_crash_can_be_retried(std::sync::Arc::new(s)).await
        }
    }
}

/// Blobs of a few parts, pushed whole and in chunks of awkward sizes (an empty one, one byte,
/// one over a part), read back whole and by range.
async fn large_blobs_cross_parts(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("big");
    let unit = s.part_size().map_or(1 << 20, |p| p.target) as usize;
    let data: Vec<u8> = (0..unit * 2 + unit / 2 + 3)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let d = Digest::of(&data);
    r.put_blob(&a, &d, body(&data), Some(data.len() as u64))
        .await
        .unwrap();
    assert!(read(r.get_blob(&a, &d, None).await.unwrap()).await == data);

    let b = repo("chunked");
    let up = r.start_upload(&b).await.unwrap();
    let cuts = [
        unit / 3,
        unit / 3 + unit + 1,
        unit / 3 + unit + 1,
        unit / 3 + unit + 2,
    ];
    let mut at = 0;
    for cut in cuts {
        let st = r
            .append_chunk(&b, &up.id, Some(at as u64), body(&data[at..cut]), None)
            .await
            .unwrap();
        assert_eq!(st.offset, cut as u64);
        at = cut;
    }
    let info = r
        .complete_upload(&b, &up.id, &d, Some((body(&data[at..]), None)))
        .await
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert!(read(r.get_blob(&b, &d, None).await.unwrap()).await == data);
    let mid = (unit + 5) as u64;
    let part = r
        .get_blob(&b, &d, Some(GetRange::Bounded(mid..mid + 10)))
        .await
        .unwrap();
    assert_eq!(part.range, mid..mid + 10);
    assert!(read(part).await == data[mid as usize..mid as usize + 10]);

    // A streamed push of bytes already stored ends with one copy of them, readable.
    let up = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &up.id, None, body(&data), None)
        .await
        .unwrap();
    r.complete_upload(&a, &up.id, &d, None).await.unwrap();
    assert!(read(r.get_blob(&a, &d, None).await.unwrap()).await == data);
    let report = registry_core::scrub::scrub(&r).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.bytes, data.len() as u64);
}

async fn monolithic_blob_push(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("a/b");
    let data = b"0123456789abcdef";
    let d = Digest::of(data);
    let info = r.put_blob(&a, &d, body(data), Some(16)).await.unwrap();
    assert_eq!(info.size, 16);
    assert_eq!(r.stat_blob(&a, &d).await.unwrap().size, 16);
    assert_eq!(read(r.get_blob(&a, &d, None).await.unwrap()).await, data);
    let part = r
        .get_blob(&a, &d, Some(GetRange::Bounded(2..5)))
        .await
        .unwrap();
    assert_eq!((part.size, part.range.clone()), (16, 2..5));
    assert_eq!(read(part).await, b"234");
    let err = r
        .get_blob(&a, &d, Some(GetRange::Offset(16)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RangeNotSatisfiable { size: 16 }),
        "{err}"
    );
    let empty = Digest::of(b"");
    r.put_blob(&a, &empty, body(b""), None).await.unwrap();
    assert_eq!(r.stat_blob(&a, &empty).await.unwrap().size, 0);
    r.delete_blob(&a, &d).await.unwrap();
    assert!(matches!(
        r.stat_blob(&a, &d).await,
        Err(Error::BlobUnknown { .. })
    ));
    assert!(matches!(
        r.delete_blob(&a, &d).await,
        Err(Error::BlobUnknown { .. })
    ));
}

async fn monolithic_push_with_wrong_digest_stores_nothing(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let claimed = Digest::of(b"something else");
    let err = r
        .put_blob(&a, &claimed, body(b"actual"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(matches!(
        r.stat_blob(&a, &claimed).await,
        Err(Error::BlobUnknown { .. })
    ));
    assert!(!s.exists(&paths::blob_data(&claimed)).await.unwrap());
    assert!(r.mount_blob(&a, &claimed, None).await.is_err());
}

async fn monolithic_push_with_wrong_length_is_refused(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let d = Digest::of(b"abc");
    for announced in [2, 4] {
        let err = r
            .put_blob(&a, &d, body(b"abc"), Some(announced))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BlobUploadInvalid { .. }), "{err}");
    }
    assert!(!s.exists(&paths::blob_data(&d)).await.unwrap());
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"ab")),
        Err(std::io::Error::other("reset by peer")),
    ])
    .boxed();
    let err = r.put_blob(&a, &d, failing, None).await.unwrap_err();
    assert!(matches!(err, Error::BlobUploadInvalid { .. }), "{err}");
}

async fn chunked_upload(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("chunked");
    let up = r.start_upload(&a).await.unwrap();
    assert_eq!(up.offset, 0);
    let st = r
        .append_chunk(&a, &up.id, Some(0), body(b"hello "), Some(6))
        .await
        .unwrap();
    assert_eq!(st.offset, 6);
    let err = r
        .append_chunk(&a, &up.id, Some(3), body(b"xx"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ChunkOutOfOrder {
                requested: 3,
                current: 6
            }
        ),
        "{err}"
    );
    let err = r
        .append_chunk(&a, &up.id, Some(6), body(b"xx"), Some(5))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BlobUploadInvalid { .. }), "{err}");
    // A new Registry over the same storage continues the upload, as another process would.
    let r2 = Registry::new(s, RegistryConfig::default());
    assert_eq!(r2.upload_status(&a, &up.id).await.unwrap().offset, 6);
    let st = r2
        .append_chunk(&a, &up.id, None, body(b"wor"), None)
        .await
        .unwrap();
    assert_eq!(st.offset, 9);
    let d = Digest::of(b"hello world");
    let info = r
        .complete_upload(&a, &up.id, &d, Some((body(b"ld"), Some(2))))
        .await
        .unwrap();
    assert_eq!(info.size, 11);
    assert_eq!(
        read(r.get_blob(&a, &d, None).await.unwrap()).await,
        b"hello world"
    );
    assert!(matches!(
        r.upload_status(&a, &up.id).await,
        Err(Error::BlobUploadUnknown { .. })
    ));
}

async fn chunked_upload_with_wrong_digest_stores_nothing(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let up = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &up.id, Some(0), body(b"data"), None)
        .await
        .unwrap();
    let wrong = Digest::of(b"other");
    let err = r
        .complete_upload(&a, &up.id, &wrong, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!s.exists(&paths::blob_data(&wrong)).await.unwrap());
    assert!(
        !s.exists(&paths::blob_data(&Digest::of(b"data")))
            .await
            .unwrap()
    );
    assert!(matches!(
        r.upload_status(&a, &up.id).await,
        Err(Error::BlobUploadUnknown { .. })
    ));
    let left: Vec<_> = s.list_recursive("").try_collect().await.unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}

async fn sha512_digests_are_verified(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("a");
    let mut h = registry_core::Digester::new(registry_core::Algorithm::Sha512);
    h.update(b"five!");
    let d512 = h.finish();
    r.put_blob(&a, &d512, body(b"five!"), None).await.unwrap();
    assert_eq!(r.stat_blob(&a, &d512).await.unwrap().size, 5);
    let up = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &up.id, None, body(b"five!"), None)
        .await
        .unwrap();
    r.complete_upload(&a, &up.id, &d512, None).await.unwrap();
    let up = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &up.id, None, body(b"six!!!"), None)
        .await
        .unwrap();
    let err = r
        .complete_upload(&a, &up.id, &d512, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

async fn unknown_and_foreign_uploads(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let (a, b) = (repo("a"), repo("b"));
    let up = r.start_upload(&a).await.unwrap();
    for id in [
        "0123456789abcdef0123456789abcdef",
        "../../etc",
        "",
        &up.id.to_uppercase(),
    ] {
        let err = r.upload_status(&a, id).await.unwrap_err();
        assert!(
            matches!(err, Error::BlobUploadUnknown { .. }),
            "{id}: {err}"
        );
    }
    let err = r
        .append_chunk(&b, &up.id, None, body(b"x"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BlobUploadUnknown { .. }), "{err}");
    let err = r
        .complete_upload(&b, &up.id, &Digest::of(b""), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BlobUploadUnknown { .. }), "{err}");
    r.cancel_upload(&a, &up.id).await.unwrap();
}

async fn cancelled_upload_is_gone(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let up = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &up.id, None, body(b"abc"), None)
        .await
        .unwrap();
    r.cancel_upload(&a, &up.id).await.unwrap();
    assert!(matches!(
        r.upload_status(&a, &up.id).await,
        Err(Error::BlobUploadUnknown { .. })
    ));
    assert!(matches!(
        r.cancel_upload(&a, &up.id).await,
        Err(Error::BlobUploadUnknown { .. })
    ));
    let left: Vec<_> = s.list_recursive("").try_collect().await.unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}

async fn mounts(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let (a, b, c, d) = (repo("a"), repo("b"), repo("c"), repo("d"));
    let dg = Digest::of(b"shared");
    r.put_blob(&a, &dg, body(b"shared"), None).await.unwrap();
    let err = r.mount_blob(&b, &dg, Some(&c)).await.unwrap_err();
    assert!(matches!(err, Error::BlobUnknown { .. }), "{err}");
    assert!(r.stat_blob(&b, &dg).await.is_err());
    assert_eq!(r.mount_blob(&b, &dg, Some(&a)).await.unwrap().size, 6);
    assert_eq!(
        read(r.get_blob(&b, &dg, None).await.unwrap()).await,
        b"shared"
    );
    assert_eq!(r.mount_blob(&d, &dg, None).await.unwrap().size, 6);
    let missing = Digest::of(b"missing");
    assert!(matches!(
        r.mount_blob(&d, &missing, None).await,
        Err(Error::BlobUnknown { .. })
    ));
}

async fn repositories_see_only_their_blobs(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let d = Digest::of(b"private");
    r.put_blob(&repo("mine"), &d, body(b"private"), None)
        .await
        .unwrap();
    for other in ["other", "mine/sub", "min"] {
        let err = r.get_blob(&repo(other), &d, None).await.unwrap_err();
        assert!(matches!(err, Error::BlobUnknown { .. }), "{other}: {err}");
    }
}

async fn blob_bytes_are_stored_once(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let d = Digest::of(b"layer");
    r.put_blob(&repo("one"), &d, body(b"layer"), None)
        .await
        .unwrap();
    let up = r.start_upload(&repo("two")).await.unwrap();
    r.complete_upload(&repo("two"), &up.id, &d, Some((body(b"layer"), None)))
        .await
        .unwrap();
    let blobs: Vec<_> = s.list_recursive(paths::BLOBS).try_collect().await.unwrap();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
}

async fn push_image(r: &Registry, a: &RepositoryName, tag: &str, seed: &str) -> (Digest, Vec<u8>) {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let layer = format!("layer of {seed}");
    let (cd, ld) = (Digest::of(config.as_bytes()), Digest::of(layer.as_bytes()));
    r.put_blob(a, &cd, body(config.as_bytes()), None)
        .await
        .unwrap();
    r.put_blob(a, &ld, body(layer.as_bytes()), None)
        .await
        .unwrap();
    let m = image_manifest(&cd, &[&ld], None);
    let reference: Reference = tag.parse().unwrap();
    let info = r
        .put_manifest(a, &reference, Some(OCI_MANIFEST), Bytes::from(m.clone()))
        .await
        .unwrap();
    assert_eq!(info.digest, Digest::of(&m));
    (info.digest, m)
}

async fn manifests_by_tag_and_digest(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("library/hello");
    let (d, bytes) = push_image(&r, &a, "v1", "one").await;
    for reference in [
        Reference::Tag("v1".parse().unwrap()),
        Reference::Digest(d.clone()),
    ] {
        let got = r.get_manifest(&a, &reference).await.unwrap();
        assert_eq!(got.bytes, bytes);
        assert_eq!(got.info.digest, d);
        assert_eq!(got.info.media_type, OCI_MANIFEST);
        assert_eq!(
            r.stat_manifest(&a, &reference).await.unwrap().size,
            bytes.len() as u64
        );
    }
    let by_digest = r
        .put_manifest(
            &a,
            &Reference::Digest(d.clone()),
            None,
            Bytes::from(bytes.clone()),
        )
        .await
        .unwrap();
    assert_eq!(by_digest.digest, d);
    let (d2, _) = push_image(&r, &a, "v1", "two").await;
    assert_eq!(
        r.stat_manifest(&a, &"v1".parse().unwrap())
            .await
            .unwrap()
            .digest,
        d2
    );
    assert!(
        r.get_manifest(&a, &Reference::Digest(d)).await.is_ok(),
        "untagged manifest still there"
    );
    assert!(matches!(
        r.get_manifest(&repo("other"), &"v1".parse().unwrap()).await,
        Err(Error::ManifestUnknown { .. })
    ));
}

async fn manifest_errors(s: Arc<dyn Storage>) {
    let r = Registry::new(
        s.clone(),
        RegistryConfig {
            max_manifest_size: 2048,
            ..Default::default()
        },
    );
    let a = repo("a");
    let config = Digest::of(b"{}");
    r.put_blob(&a, &config, body(b"{}"), None).await.unwrap();
    let missing = Digest::of(b"missing layer");
    let m = image_manifest(&config, &[&missing], None);
    let err = r
        .put_manifest(
            &a,
            &"t".parse().unwrap(),
            Some(OCI_MANIFEST),
            Bytes::from(m),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ManifestBlobUnknown { ref digest } if *digest == missing),
        "{err}"
    );
    let ok = image_manifest(&config, &[], None);
    let wrong = Reference::Digest(Digest::of(b"not it"));
    let err = r
        .put_manifest(&a, &wrong, Some(OCI_MANIFEST), Bytes::from(ok.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let mut big = ok.clone();
    big.truncate(big.len() - 1);
    big.extend_from_slice(format!(r#","annotations":{{"x":"{}"}}}}"#, "y".repeat(3000)).as_bytes());
    let err = r
        .put_manifest(
            &a,
            &"t".parse().unwrap(),
            Some(OCI_MANIFEST),
            Bytes::from(big),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ManifestTooLarge { limit: 2048, .. }),
        "{err}"
    );
    let err = r
        .put_manifest(&a, &"t".parse().unwrap(), Some(OCI_INDEX), Bytes::from(ok))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestInvalid { .. }), "{err}");
    assert!(matches!(r.list_tags(&a, None, None).await, Ok(p) if p.items.is_empty()));
    assert!(!s.exists(&paths::repository(&a)).await.unwrap());
    let none = r
        .stat_manifest(&a, &"t".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(none, Error::ManifestUnknown { .. }), "{none}");
}

async fn lenient_reference_checks(s: Arc<dyn Storage>) {
    let r = Registry::new(
        s,
        RegistryConfig {
            validate_references: false,
            ..Default::default()
        },
    );
    let a = repo("a");
    let m = image_manifest(&Digest::of(b"no config"), &[&Digest::of(b"no layer")], None);
    r.put_manifest(
        &a,
        &"t".parse().unwrap(),
        Some(OCI_MANIFEST),
        Bytes::from(m),
    )
    .await
    .unwrap();
}

async fn index_children_must_exist(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("multi");
    let (child, bytes) = push_image(&r, &a, "amd64", "amd64").await;
    let index = |d: &Digest| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            bytes.len()
        )
    };
    let missing = Digest::of(b"no such child");
    let err = r
        .put_manifest(
            &a,
            &"all".parse().unwrap(),
            Some(OCI_INDEX),
            Bytes::from(index(&missing)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestBlobUnknown { .. }), "{err}");
    let info = r
        .put_manifest(
            &a,
            &"all".parse().unwrap(),
            Some(OCI_INDEX),
            Bytes::from(index(&child)),
        )
        .await
        .unwrap();
    assert_eq!(
        r.stat_manifest(&a, &"all".parse().unwrap())
            .await
            .unwrap()
            .media_type,
        OCI_INDEX
    );
    assert_eq!(info.digest, Digest::of(index(&child).as_bytes()));
}

async fn deleting_a_tagged_manifest_removes_its_tags(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("a");
    let (d, bytes) = push_image(&r, &a, "v1", "x").await;
    r.put_manifest(&a, &"v2".parse().unwrap(), None, Bytes::from(bytes))
        .await
        .unwrap();
    let (other, _) = push_image(&r, &a, "keep", "y").await;
    r.delete_manifest(&a, &d).await.unwrap();
    for tag in ["v1", "v2"] {
        let err = r.get_manifest(&a, &tag.parse().unwrap()).await.unwrap_err();
        assert!(matches!(err, Error::ManifestUnknown { .. }), "{tag}: {err}");
    }
    assert!(matches!(
        r.get_manifest(&a, &Reference::Digest(d.clone())).await,
        Err(Error::ManifestUnknown { .. })
    ));
    assert_eq!(r.list_tags(&a, None, None).await.unwrap().items, ["keep"]);
    assert_eq!(
        r.stat_manifest(&a, &"keep".parse().unwrap())
            .await
            .unwrap()
            .digest,
        other
    );
    assert!(matches!(
        r.delete_manifest(&a, &d).await,
        Err(Error::ManifestUnknown { .. })
    ));
    r.delete_manifest(&a, &other).await.unwrap();
    assert!(
        r.list_tags(&a, None, None).await.unwrap().items.is_empty(),
        "an emptied repository still lists"
    );
}

async fn delete_tag_keeps_manifest(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("a");
    let (d, _) = push_image(&r, &a, "v1", "x").await;
    r.delete_tag(&a, &"v1".parse().unwrap()).await.unwrap();
    assert!(r.get_manifest(&a, &"v1".parse().unwrap()).await.is_err());
    assert!(r.get_manifest(&a, &Reference::Digest(d)).await.is_ok());
    assert!(matches!(
        r.delete_tag(&a, &"v1".parse().unwrap()).await,
        Err(Error::ManifestUnknown { .. })
    ));
}

async fn tag_listing(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("tags");
    for t in ["b", "a", "C", "c", "a1"] {
        push_image(&r, &a, t, "same").await;
    }
    let all = r.list_tags(&a, None, None).await.unwrap();
    assert_eq!(all.items, ["C", "a", "a1", "b", "c"]);
    assert!(!all.more);
    let p = r.list_tags(&a, Some(2), None).await.unwrap();
    assert_eq!(
        (p.items.as_slice(), p.more),
        (&["C".to_string(), "a".into()][..], true)
    );
    let p = r.list_tags(&a, Some(2), Some("a")).await.unwrap();
    assert_eq!(
        (p.items.as_slice(), p.more),
        (&["a1".to_string(), "b".into()][..], true)
    );
    let p = r.list_tags(&a, Some(2), Some("b")).await.unwrap();
    assert_eq!(
        (p.items.as_slice(), p.more),
        (&["c".to_string()][..], false)
    );
    assert!(
        r.list_tags(&a, Some(0), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let err = r.list_tags(&repo("nobody"), None, None).await.unwrap_err();
    assert!(matches!(err, Error::NameUnknown { .. }), "{err}");
}

async fn catalog(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    for name in ["b", "a/b/c", "a-c", "a", "x/blobs", "x/manifests/tags"] {
        push_image(&r, &repo(name), "t", name).await;
    }
    r.put_blob(&repo("only/blobs"), &Digest::of(b"z"), body(b"z"), None)
        .await
        .unwrap();
    // In the lexical order of the names' components, as distribution's walk lists them.
    let all = r.list_repositories(None, None).await.unwrap();
    assert_eq!(
        all.items,
        ["a", "a/b/c", "a-c", "b", "x/blobs", "x/manifests/tags"]
    );
    let p = r.list_repositories(Some(2), Some("a/b/c")).await.unwrap();
    assert_eq!(p.items, ["a-c", "b"]);
    assert!(p.more);
    let p = r.list_repositories(Some(2), Some("b")).await.unwrap();
    assert_eq!(p.items, ["x/blobs", "x/manifests/tags"]);
    assert!(!p.more);
}

async fn referrers(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("a");
    let (subject, _) = push_image(&r, &a, "v1", "base").await;
    let config = Digest::of(b"{}");
    r.put_blob(&a, &config, body(b"{}"), None).await.unwrap();
    let sig = image_manifest(&config, &[], Some(&subject));
    let sig_info = r
        .put_manifest(
            &a,
            &Reference::Digest(Digest::of(&sig)),
            Some(OCI_MANIFEST),
            Bytes::from(sig),
        )
        .await
        .unwrap();
    assert_eq!(sig_info.subject.as_ref(), Some(&subject));
    let dangling = Digest::of(b"not pushed yet");
    let early = image_manifest(&config, &[], Some(&dangling));
    r.put_manifest(&a, &"early".parse().unwrap(), None, Bytes::from(early))
        .await
        .unwrap();
    let list = r.list_referrers(&a, &subject, None).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].digest, sig_info.digest);
    assert_eq!(
        list[0].artifact_type.as_deref(),
        Some("application/vnd.example.sig")
    );
    assert_eq!(
        r.list_referrers(&a, &subject, Some("application/vnd.example.sig"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        r.list_referrers(&a, &subject, Some("other/type"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        r.list_referrers(&a, &dangling, None).await.unwrap().len(),
        1
    );
    assert!(
        r.list_referrers(&a, &Digest::of(b"unknown"), None)
            .await
            .unwrap()
            .is_empty()
    );
    r.delete_manifest(&a, &sig_info.digest).await.unwrap();
    assert!(
        r.list_referrers(&a, &subject, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_pushes_of_one_blob_and_manifest(s: Arc<dyn Storage>) {
    let r = Registry::new(s, RegistryConfig::default());
    let a = repo("busy");
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let ld = Digest::of(&layer);
    let config = b"{\"c\":1}";
    let cd = Digest::of(config);
    let tasks = (0..16).map(|i| {
        let (r, a, layer, ld, cd) = (r.clone(), a.clone(), layer.clone(), ld.clone(), cd.clone());
        tokio::spawn(async move {
            if i % 2 == 0 {
                r.put_blob(&a, &ld, body(&layer), None).await?;
            } else {
                let up = r.start_upload(&a).await?;
                r.append_chunk(&a, &up.id, Some(0), body(&layer[..1000]), None)
                    .await?;
                r.append_chunk(&a, &up.id, Some(1000), body(&layer[1000..]), None)
                    .await?;
                r.complete_upload(&a, &up.id, &ld, None).await?;
            }
            r.put_blob(&a, &cd, body(config), None).await?;
            let m = image_manifest(&cd, &[&ld], None);
            r.put_manifest(
                &a,
                &"latest".parse().unwrap(),
                Some(OCI_MANIFEST),
                Bytes::from(m),
            )
            .await
        })
    });
    let results = futures::future::join_all(tasks).await;
    for res in results {
        res.unwrap().unwrap();
    }
    assert_eq!(read(r.get_blob(&a, &ld, None).await.unwrap()).await, layer);
    let m = r
        .get_manifest(&a, &"latest".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        m.info.digest,
        Digest::of(&image_manifest(&cd, &[&ld], None))
    );
}

#[tokio::test]
async fn filesystem_upload_continues_in_a_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    let a = repo("a");
    let first = Registry::new(
        Arc::new(FilesystemStorage::new(dir.path()).unwrap()),
        RegistryConfig::default(),
    );
    let up = first.start_upload(&a).await.unwrap();
    first
        .append_chunk(&a, &up.id, Some(0), body(b"begun here, "), None)
        .await
        .unwrap();
    drop(first);
    let second = Registry::new(
        Arc::new(FilesystemStorage::new(dir.path()).unwrap()),
        RegistryConfig::default(),
    );
    second
        .append_chunk(&a, &up.id, Some(12), body(b"ended there"), None)
        .await
        .unwrap();
    let d = Digest::of(b"begun here, ended there");
    second.complete_upload(&a, &up.id, &d, None).await.unwrap();
    let third = Registry::new(
        Arc::new(FilesystemStorage::new(dir.path()).unwrap()),
        RegistryConfig::default(),
    );
    let blob = read(third.get_blob(&a, &d, None).await.unwrap()).await;
    assert_eq!(blob, b"begun here, ended there");
}

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

/// Does what a completion does up to a crash: the storage upload completed (the bytes put at
/// their place when they were all in the tail) and, when `committed`, moved into place or pointed
/// at by the blob's location.
async fn crash_after_completion(
    s: &Arc<dyn Storage>,
    session: &registry_core::UploadSession,
    d: &Digest,
    data: &[u8],
    committed: bool,
) {
    let data_key = paths::upload_data(&session.id);
    let Some(id) = &session.multipart else {
        assert_eq!(session.tail, data.len() as u64);
        if committed {
            s.put(&paths::blob_data(d), Bytes::copy_from_slice(data))
                .await
                .unwrap();
        }
        return;
    };
    let mut parts = session.parts.clone();
    if session.tail > 0 {
        let tail = s.get_bytes(&session.tail_key().unwrap()).await.unwrap();
        parts.push(
            s.put_part(&data_key, id, parts.len(), body(&tail))
                .await
                .unwrap(),
        );
    }
    s.complete_multipart(&data_key, id, parts).await.unwrap();
    if !committed {
        return;
    }
    if s.rename_copies() {
        // The location record, as the layout stores it.
        let location = serde_json::json!({ "key": data_key, "size": data.len() });
        let record = Bytes::from(serde_json::to_vec(&location).unwrap());
        s.put(&paths::blob_location(d), record).await.unwrap();
    } else {
        s.rename(&data_key, &paths::blob_data(d)).await.unwrap();
    }
}

async fn completion_interrupted_by_a_crash_can_be_retried(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    let a = repo("a");
    let session_of = |id: String| {
        let s = s.clone();
        async move {
            let bytes = s.get_bytes(&paths::upload_session(&id)).await.unwrap();
            serde_json::from_slice::<registry_core::UploadSession>(&bytes).unwrap()
        }
    };
    for (data, renamed) in [
        (&b"completed, not renamed"[..], false),
        (b"completed and renamed", true),
    ] {
        let d = Digest::of(data);
        let up = r.start_upload(&a).await.unwrap();
        r.append_chunk(&a, &up.id, Some(0), body(&data[..5]), None)
            .await
            .unwrap();
        r.append_chunk(&a, &up.id, Some(5), body(&data[5..]), None)
            .await
            .unwrap();
        // What a crash during the first PUT may leave: the storage upload completed (and perhaps
        // moved into place), the session not yet ended.
        let session = session_of(up.id.clone()).await;
        crash_after_completion(&s, &session, &d, data, renamed).await;
        assert_eq!(
            r.upload_status(&a, &up.id).await.unwrap().offset,
            data.len() as u64
        );
        r.complete_upload(&a, &up.id, &d, None).await.unwrap();
        assert_eq!(read(r.get_blob(&a, &d, None).await.unwrap()).await, data);
        assert!(matches!(
            r.upload_status(&a, &up.id).await,
            Err(Error::BlobUploadUnknown { .. })
        ));
    }
    // The same state with a digest the upload did not hash to: refused, nothing linked.
    let up = r.start_upload(&a).await.unwrap();
    r.append_chunk(&a, &up.id, Some(0), body(b"mine"), None)
        .await
        .unwrap();
    let session = session_of(up.id.clone()).await;
    crash_after_completion(&s, &session, &Digest::of(b"mine"), b"mine", true).await;
    let other = Digest::of(b"completed and renamed");
    r.delete_blob(&a, &other).await.unwrap();
    let err = r
        .complete_upload(&a, &up.id, &other, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(
        r.stat_blob(&a, &other).await.is_err(),
        "linked a blob the upload did not carry"
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

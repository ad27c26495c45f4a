//! `Registry` blobs and uploads on every backend: pushes whole and in chunks, their error paths,
//! mounts, and completions retried after a crash.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{body, read, repo};
use futures::{StreamExt, TryStreamExt};
use registry_core::paths;
use registry_core::{
    ByteStream, Digest, Error, GetRange, Registry, RegistryConfig, Storage, StorageExt,
};
use registry_storage::FilesystemStorage;

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
    let unit = s.capabilities().part_size.map_or(1 << 20, |p| p.target) as usize;
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
        matches!(
            err,
            Error::Storage(registry_core::StorageError::RangeNotSatisfiable { size: 16 })
        ),
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
    // The bytes once, and a record of each repository linking them (for garbage collection).
    let kinds: Vec<_> = blobs
        .iter()
        .filter_map(|m| paths::parse_blob_key(&m.key).map(|(_, kind)| kind))
        .collect();
    assert_eq!(kinds.len(), blobs.len(), "{blobs:?}");
    let bytes = kinds
        .iter()
        .filter(|k| matches!(k, paths::BlobObject::Data | paths::BlobObject::Location));
    assert_eq!(bytes.count(), 1, "{blobs:?}");
    for name in ["one", "two"] {
        assert!(
            kinds.contains(&paths::BlobObject::Linked(repo(name))),
            "{blobs:?}"
        );
    }
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
    if s.capabilities().rename_copies {
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

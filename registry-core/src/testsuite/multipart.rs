//! The suite's cases of multipart uploads, and of objects larger than a part.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{Opener, keys, read_all, stream_of};
use crate::storage::StorageError;
use crate::storage::{ByteStream, GetRange, ObjectMeta, Storage, StorageExt};

/// `content` padded with dots to the backend's smallest part, as every part but the last must be.
fn full_part(s: &dyn Storage, content: &[u8]) -> Bytes {
    let min = s.capabilities().part_size.map_or(0, |p| p.min as usize);
    let mut part = content.to_vec();
    part.resize(min.max(content.len()), b'.');
    Bytes::from(part)
}

fn stream_once(data: Bytes) -> ByteStream {
    futures::stream::once(async move { Ok(data) }).boxed()
}

/// Parts concatenate in the order given; a part put twice keeps the newer receipt's bytes.
pub async fn multipart_complete(open: Opener<'_>) {
    let s = open();
    let id = s.create_multipart("u/obj").await.expect("create");
    let (first, second) = (full_part(&*s, b"abc"), full_part(&*s, b"de"));
    let p0 = if s.capabilities().part_size.is_none() {
        s.put_part("u/obj", &id, 0, stream_of(vec![b"ab", b"c"]))
            .await
            .expect("part 0")
    } else {
        let mut chunks = vec![Bytes::from_static(b"ab"), first.slice(2..)];
        chunks.retain(|c| !c.is_empty());
        let stream = futures::stream::iter(chunks.into_iter().map(Ok)).boxed();
        s.put_part("u/obj", &id, 0, stream).await.expect("part 0")
    };
    let _old = s
        .put_part("u/obj", &id, 1, stream_once(full_part(&*s, b"old")))
        .await
        .expect("part 1");
    let p1 = s
        .put_part("u/obj", &id, 1, stream_once(second.clone()))
        .await
        .expect("part 1 again");
    let p2 = s
        .put_part("u/obj", &id, 2, stream_of(vec![b"f"]))
        .await
        .expect("part 2");
    s.complete_multipart("u/obj", &id, vec![p0, p1, p2])
        .await
        .expect("complete");
    let expected = [&first[..], &second[..], b"f"].concat();
    assert!(s.get_bytes("u/obj").await.expect("get") == expected[..]);
    let again = s.put_part("u/obj", &id, 3, stream_of(vec![b"g"])).await;
    assert!(
        matches!(again, Err(StorageError::NotFound { .. })),
        "a completed upload took a part: {again:?}"
    );
    s.delete("u/obj").await.expect("delete");
}

/// Completing with no parts makes an empty object.
pub async fn multipart_zero_parts(open: Opener<'_>) {
    let s = open();
    let id = s.create_multipart("z/obj").await.expect("create");
    s.complete_multipart("z/obj", &id, vec![])
        .await
        .expect("complete");
    assert_eq!(s.head("z/obj").await.expect("head").size, 0);
    s.delete("z/obj").await.expect("delete");
}

/// Abort frees the upload and shows nothing; aborting twice or an unknown id is fine.
pub async fn multipart_abort(open: Opener<'_>) {
    let s = open();
    let id = s.create_multipart("a/obj").await.expect("create");
    s.put_part("a/obj", &id, 0, stream_of(vec![b"data"]))
        .await
        .expect("part");
    s.abort_multipart("a/obj", &id).await.expect("abort");
    s.abort_multipart("a/obj", &id).await.expect("abort twice");
    assert!(!s.exists("a/obj").await.expect("exists"));
    let late = s.put_part("a/obj", &id, 1, stream_of(vec![b"x"])).await;
    assert!(
        matches!(late, Err(StorageError::NotFound { .. })),
        "an aborted upload took a part: {late:?}"
    );
    let done = s.complete_multipart("a/obj", &id, vec![]).await;
    assert!(
        matches!(done, Err(StorageError::NotFound { .. })),
        "an aborted upload completed: {done:?}"
    );
    assert!(!s.exists("a/obj").await.expect("exists"));
}

/// An upload begun through one handle continues and completes through others.
pub async fn multipart_resumed_by_new_instance(open: Opener<'_>) {
    let id = open().create_multipart("res/obj").await.expect("create");
    let first = full_part(&*open(), b"first-");
    let p0 = open()
        .put_part("res/obj", &id, 0, stream_once(first.clone()))
        .await
        .expect("part 0");
    let p1 = open()
        .put_part("res/obj", &id, 1, stream_of(vec![b"second"]))
        .await
        .expect("part 1");
    let s = open();
    s.complete_multipart("res/obj", &id, vec![p0, p1])
        .await
        .expect("complete");
    let expected = [&first[..], b"second"].concat();
    assert!(s.get_bytes("res/obj").await.expect("get") == expected[..]);
    s.delete("res/obj").await.expect("delete");
}

/// Parts are invisible: neither the key nor any listing shows them before completion.
pub async fn multipart_invisible_until_complete(open: Opener<'_>) {
    let s = open();
    let id = s.create_multipart("inv/obj").await.expect("create");
    let p = s
        .put_part("inv/obj", &id, 0, stream_of(vec![b"zz"]))
        .await
        .expect("part");
    assert!(!s.exists("inv/obj").await.expect("exists"));
    let all: Vec<ObjectMeta> = s.list_recursive("").try_collect().await.expect("list");
    assert!(all.is_empty(), "parts are listed: {:?}", keys(&all));
    s.complete_multipart("inv/obj", &id, vec![p])
        .await
        .expect("complete");
    s.delete("inv/obj").await.expect("delete");
}

/// A part whose stream fails is not stored; the same index can be sent again.
pub async fn multipart_failed_part_retried(open: Opener<'_>) {
    let s = open();
    let id = s.create_multipart("f/obj").await.expect("create");
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    assert!(s.put_part("f/obj", &id, 0, failing).await.is_err());
    let p = s
        .put_part("f/obj", &id, 0, stream_of(vec![b"whole"]))
        .await
        .expect("retry");
    s.complete_multipart("f/obj", &id, vec![p])
        .await
        .expect("complete");
    assert_eq!(s.get_bytes("f/obj").await.expect("get"), "whole");
    s.delete("f/obj").await.expect("delete");
}

/// Two uploads of one key complete independently; the key holds one of them whole.
pub async fn multipart_racing_uploads(open: Opener<'_>) {
    let tasks = (0..8u8).map(|i| {
        let s = open();
        tokio::spawn(async move {
            let id = s.create_multipart("race/obj").await?;
            let data = Bytes::from(vec![i; 100_000]);
            let p = s
                .put_part(
                    "race/obj",
                    &id,
                    0,
                    futures::stream::once(async { Ok(data) }).boxed(),
                )
                .await?;
            s.complete_multipart("race/obj", &id, vec![p]).await
        })
    });
    for t in futures::future::join_all(tasks).await {
        t.expect("task").expect("upload");
    }
    let s = open();
    let got = s.get_bytes("race/obj").await.expect("get");
    assert_eq!(got.len(), 100_000);
    assert!(got.iter().all(|&b| b == got[0]), "uploads were mixed");
    s.delete("race/obj").await.expect("delete");
}

/// A receipt names the bytes its `put_part` stored: when the part is put again with other bytes
/// (two requests racing on one upload), completing with the first receipt fails or gives the first
/// bytes, never the second ones.
pub async fn multipart_receipts_name_their_bytes(open: Opener<'_>) {
    let s = open();
    let id = s.create_multipart("rc/obj").await.expect("create");
    let first = full_part(&*s, b"first");
    let second = Bytes::from(vec![b'X'; first.len()]);
    let p0 = s
        .put_part("rc/obj", &id, 0, stream_once(first.clone()))
        .await
        .expect("part 0");
    s.put_part("rc/obj", &id, 0, stream_once(second))
        .await
        .expect("part 0 again");
    match s.complete_multipart("rc/obj", &id, vec![p0]).await {
        Ok(()) => {
            assert!(
                s.get_bytes("rc/obj").await.expect("get") == first,
                "completed with bytes its receipt does not name"
            );
            s.delete("rc/obj").await.expect("delete");
        }
        Err(_) => s.abort_multipart("rc/obj", &id).await.expect("abort"),
    }
    assert!(!s.exists("rc/obj").await.expect("exists"));
}

/// An object of many chunks streams in and out intact, and a range deep inside it reads right.
pub async fn streams_large_objects(open: Opener<'_>) {
    let s = open();
    let chunk: Vec<u8> = (0..=255u8).cycle().take(64 * 1024 + 7).collect();
    let chunk = Bytes::from(chunk);
    let n = 160;
    let c = chunk.clone();
    let stream = futures::stream::iter((0..n).map(move |_| Ok(c.clone()))).boxed();
    let id = s.create_multipart("big/obj").await.expect("create");
    let p = s.put_part("big/obj", &id, 0, stream).await.expect("part");
    s.complete_multipart("big/obj", &id, vec![p])
        .await
        .expect("complete");
    let total = chunk.len() as u64 * n;
    assert_eq!(s.head("big/obj").await.expect("head").size, total);
    let mut got = 0u64;
    let mut stream = s.get("big/obj", None).await.expect("get").stream;
    while let Some(c) = stream.try_next().await.expect("read") {
        for (i, b) in c.iter().enumerate() {
            assert_eq!(*b, chunk[((got + i as u64) % chunk.len() as u64) as usize]);
        }
        got += c.len() as u64;
    }
    assert_eq!(got, total);
    let start = total / 2 + 3;
    let part = read_all(&*s, "big/obj", Some(GetRange::Bounded(start..start + 1000))).await;
    assert_eq!(part[0], chunk[(start % chunk.len() as u64) as usize]);
    assert_eq!(part.len(), 1000);
    s.delete("big/obj").await.expect("delete");
}

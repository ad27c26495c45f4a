//! The conformance suite every [`Storage`] backend runs, with one line:
//!
//! ```ignore
//! registry_core::storage_testsuite!({
//!     let store = registry_storage::MemoryStorage::new();
//!     move || std::sync::Arc::new(store.clone()) as std::sync::Arc<dyn registry_core::Storage>
//! });
//! ```
//!
//! The argument is an expression giving an opener: a closure that returns a new handle on the same
//! data each time it is called (so that a case can check what another process would see). The
//! macro makes one `#[tokio::test]` per case, and each test fails if its case leaves anything behind.
//! Attributes in brackets before the opener go on every test, e.g. to skip them where the backend's
//! service is missing: `storage_testsuite!([#[cfg_attr(not(has_s3), ignore = "…")]] { … })`;
//! `storage_testsuite!(@cases [attributes] { … }; case, case…)` runs some cases only.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::error::Error;
use crate::storage::{ByteStream, GetRange, GetResult, ObjectMeta, Storage, StorageExt};

/// What the suite is handed: a way to open the same store again.
pub type Opener<'a> = &'a dyn Fn() -> Arc<dyn Storage>;

/// Makes one test per case of the suite for the backend that `$open` opens.
#[macro_export]
macro_rules! storage_testsuite {
    (@case [$(#[$attr:meta])*] $open:expr; $case:ident) => {
        $(#[$attr])*
        #[tokio::test]
        async fn $case() {
            let open = $open;
            $crate::testsuite::$case(&open).await;
            $crate::testsuite::assert_empty(&*open()).await;
        }
    };
    (@cases $attrs:tt $open:expr; $($case:ident),*) => {
        $($crate::storage_testsuite!(@case $attrs $open; $case);)*
    };
    ([$(#[$attr:meta])*] $open:expr) => {
        $crate::storage_testsuite!(@cases [$(#[$attr])*] $open;
            put_get_head_delete, ranges, immutable_reads, empty_objects, listing, pages, rename,
            rename_if_absent, concurrent_puts, puts_beside_deletes, multipart_complete, multipart_zero_parts, multipart_abort,
            multipart_resumed_by_new_instance, multipart_invisible_until_complete,
            multipart_failed_part_retried, multipart_racing_uploads,
            multipart_receipts_name_their_bytes, streams_large_objects);
    };
    ($open:expr) => {
        $crate::storage_testsuite!([] $open);
    };
}

fn stream_of(chunks: Vec<&'static [u8]>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
}

async fn read_all(store: &dyn Storage, key: &str, range: Option<GetRange>) -> Vec<u8> {
    bytes_of(store.get(key, range).await.expect("get")).await
}

/// Everything a read's stream carries.
async fn bytes_of(res: GetResult) -> Vec<u8> {
    res.stream
        .try_fold(Vec::new(), |mut acc, c| async move {
            acc.extend_from_slice(&c);
            Ok(acc)
        })
        .await
        .expect("read stream")
}

fn keys(objects: &[ObjectMeta]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

/// Fails when anything is left in the store.
pub async fn assert_empty(store: &dyn Storage) {
    let left: Vec<ObjectMeta> = store.list_recursive("").try_collect().await.expect("list");
    assert!(
        left.is_empty(),
        "case left objects behind: {:?}",
        keys(&left)
    );
}

/// Put, get, head and delete of small objects, and missing keys.
pub async fn put_get_head_delete(open: Opener<'_>) {
    let s = open();
    assert!(matches!(
        s.get("a/b", None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(s.head("a/b").await, Err(Error::NotFound { .. })));
    s.put("a/b", Bytes::from_static(b"hello"))
        .await
        .expect("put");
    assert_eq!(read_all(&*s, "a/b", None).await, b"hello");
    let meta = s.head("a/b").await.expect("head");
    assert_eq!((meta.key.as_str(), meta.size), ("a/b", 5));
    s.put("a/b", Bytes::from_static(b"hi"))
        .await
        .expect("overwrite");
    assert_eq!(s.get_bytes("a/b").await.expect("get"), "hi");
    assert_eq!(
        open().get_bytes("a/b").await.expect("get from new handle"),
        "hi"
    );
    s.delete("a/b").await.expect("delete");
    s.delete("a/b")
        .await
        .expect("delete of a missing key is fine");
    assert!(!s.exists("a/b").await.expect("exists"));
}

/// Bounded, open and suffix ranges, and ranges that select nothing.
pub async fn ranges(open: Opener<'_>) {
    let s = open();
    s.put("r", Bytes::from_static(b"0123456789"))
        .await
        .expect("put");
    assert_eq!(
        read_all(&*s, "r", Some(GetRange::Bounded(2..5))).await,
        b"234"
    );
    assert_eq!(
        read_all(&*s, "r", Some(GetRange::Bounded(8..100))).await,
        b"89"
    );
    assert_eq!(read_all(&*s, "r", Some(GetRange::Offset(7))).await, b"789");
    assert_eq!(read_all(&*s, "r", Some(GetRange::Suffix(3))).await, b"789");
    let res = s
        .get("r", Some(GetRange::Bounded(1..3)))
        .await
        .expect("get");
    assert_eq!((res.size, res.range), (10, 1..3));
    for bad in [
        GetRange::Bounded(10..20),
        GetRange::Offset(11),
        GetRange::Suffix(0),
    ] {
        let r = s.get("r", Some(bad.clone())).await;
        assert!(
            matches!(r, Err(Error::RangeNotSatisfiable { size: 10 })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        s.get("missing", Some(GetRange::Offset(0))).await,
        Err(Error::NotFound { .. })
    ));
    s.delete("r").await.expect("delete");
}

/// [`Storage::get_immutable`] (the size given, as for blobs) reads what `get` reads: whole, and
/// ranges at the ends and across whatever boundaries the backend splits reads at.
pub async fn immutable_reads(open: Opener<'_>) {
    let s = open();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 253) as u8).collect();
    s.put("i", Bytes::from(data.clone())).await.expect("put");
    for (range, want) in [
        (None, 0..100_000),
        (Some(GetRange::Bounded(0..1)), 0..1),
        (Some(GetRange::Bounded(5..70_000)), 5..70_000),
        (Some(GetRange::Bounded(99_999..200_000)), 99_999..100_000),
        (Some(GetRange::Offset(12_345)), 12_345..100_000),
        (Some(GetRange::Suffix(1)), 99_999..100_000),
    ] {
        let res = s
            .get_immutable("i", 100_000, range.clone())
            .await
            .expect("get");
        assert_eq!((res.size, res.range.clone()), (100_000, want.clone()));
        let got = bytes_of(res).await;
        assert!(
            got == data[want.start as usize..want.end as usize],
            "{range:?}: other bytes"
        );
    }
    assert!(matches!(
        s.get_immutable("i", 100_000, Some(GetRange::Offset(100_000)))
            .await,
        Err(Error::RangeNotSatisfiable { size: 100_000 })
    ));
    s.delete("i").await.expect("delete");
}

/// Empty objects exist, have size 0 and read as nothing.
pub async fn empty_objects(open: Opener<'_>) {
    let s = open();
    s.put("e", Bytes::new()).await.expect("put");
    assert_eq!(s.head("e").await.expect("head").size, 0);
    assert!(read_all(&*s, "e", None).await.is_empty());
    s.delete("e").await.expect("delete");
}

/// One level of listing: sorted objects and prefixes; missing and emptied prefixes list as empty.
pub async fn listing(open: Opener<'_>) {
    let s = open();
    for k in ["l/b/2", "l/b/1", "l/c/x/3", "l/d", "l/a-z", "l2/x"] {
        s.put(k, Bytes::from_static(b"x")).await.expect("put");
    }
    let level = s.list("l").await.expect("list");
    assert_eq!(keys(&level.objects), ["l/a-z", "l/d"]);
    assert_eq!(level.prefixes, ["b", "c"]);
    assert_eq!(level.objects[0].size, 1);
    let root = s.list("").await.expect("list root");
    assert_eq!(root.prefixes, ["l", "l2"]);
    assert!(root.objects.is_empty());
    assert_eq!(
        s.list("nothing/here").await.expect("list"),
        Default::default()
    );
    assert_eq!(
        s.list("l/d").await.expect("list of an object key"),
        Default::default()
    );
    let all: Vec<ObjectMeta> = s
        .list_recursive("l")
        .try_collect()
        .await
        .expect("recursive");
    assert_eq!(keys(&all), ["l/a-z", "l/d", "l/b/1", "l/b/2", "l/c/x/3"]);
    let mut flat: Vec<ObjectMeta> = s.list_all("l").try_collect().await.expect("list_all");
    flat.sort_by(|a, b| a.key.cmp(&b.key));
    let mut walked = all.clone();
    walked.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        flat, walked,
        "list_all and list_recursive see the same objects"
    );
    for k in ["l/b/2", "l/b/1", "l/c/x/3"] {
        s.delete(k).await.expect("delete");
    }
    let level = s.list("l").await.expect("list");
    assert!(
        level.prefixes.is_empty(),
        "emptied prefixes still listed: {:?}",
        level.prefixes
    );
    for k in ["l/d", "l/a-z", "l2/x"] {
        s.delete(k).await.expect("delete");
    }
}

/// A folder listed a page at a time: names in lexical order after an offset, deeper objects
/// skipped, an offset that names no object, an empty or missing folder.
pub async fn pages(open: Opener<'_>) {
    let s = open();
    let names = ["a", "a!b", "a-b", "b", "b.c", "c"];
    for n in names {
        s.put(&format!("pg/{n}"), Bytes::new()).await.expect("put");
    }
    s.put("pg/bb/deeper", Bytes::new()).await.expect("put");
    s.put("pg2/x", Bytes::new()).await.expect("put");
    let page = |after: Option<&'static str>, limit| {
        let s = s.clone();
        async move {
            let objects = s.list_after("pg", after, limit).await.expect("list_after");
            objects.into_iter().map(|o| o.key).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 3).await, ["pg/a", "pg/a!b", "pg/a-b"]);
    assert_eq!(page(Some("a-b"), 2).await, ["pg/b", "pg/b.c"]);
    assert_eq!(page(Some("b.c"), 10).await, ["pg/c"]);
    assert_eq!(
        page(Some("a0"), 1).await,
        ["pg/b"],
        "an offset that names no object"
    );
    assert!(page(Some("c"), 10).await.is_empty());
    assert!(page(None, 0).await.is_empty());
    assert!(
        s.list_after("missing", None, 10)
            .await
            .expect("missing folder")
            .is_empty()
    );
    for n in names {
        s.delete(&format!("pg/{n}")).await.expect("delete");
    }
    for k in ["pg/bb/deeper", "pg2/x"] {
        s.delete(k).await.expect("delete");
    }
}

/// Rename moves whole objects, replaces the target and refuses a missing source.
pub async fn rename(open: Opener<'_>) {
    let s = open();
    s.put("m/from", Bytes::from_static(b"one"))
        .await
        .expect("put");
    s.rename("m/from", "m/deep/to").await.expect("rename");
    assert!(!s.exists("m/from").await.expect("exists"));
    assert_eq!(s.get_bytes("m/deep/to").await.expect("get"), "one");
    s.put("m/from", Bytes::from_static(b"two"))
        .await
        .expect("put");
    s.rename("m/from", "m/deep/to").await.expect("rename over");
    assert_eq!(s.get_bytes("m/deep/to").await.expect("get"), "two");
    assert!(matches!(
        s.rename("m/from", "m/x").await,
        Err(Error::NotFound { .. })
    ));
    s.delete("m/deep/to").await.expect("delete");
}

/// A no-replace rename moves to a free key, and leaves both objects alone when the target exists.
pub async fn rename_if_absent(open: Opener<'_>) {
    let s = open();
    s.put("n/from", Bytes::from_static(b"one"))
        .await
        .expect("put");
    assert!(
        s.rename_if_absent("n/from", "n/deep/to")
            .await
            .expect("rename")
    );
    assert!(!s.exists("n/from").await.expect("exists"));
    s.put("n/from", Bytes::from_static(b"two"))
        .await
        .expect("put");
    assert!(
        !s.rename_if_absent("n/from", "n/deep/to")
            .await
            .expect("refused"),
        "an existing object was replaced"
    );
    assert_eq!(s.get_bytes("n/deep/to").await.expect("get"), "one");
    assert_eq!(s.get_bytes("n/from").await.expect("get"), "two");
    assert!(matches!(
        s.rename_if_absent("n/missing", "n/x").await,
        Err(Error::NotFound { .. })
    ));
    for k in ["n/from", "n/deep/to"] {
        s.delete(k).await.expect("delete");
    }
}

/// Puts and renames into a folder that deletes keep emptying (backends that prune empty folders
/// race here): every one succeeds.
pub async fn puts_beside_deletes(open: Opener<'_>) {
    let tasks = (0..32u8).map(|t| {
        let s = open();
        tokio::spawn(async move {
            for i in 0..150 {
                let key = format!("pd/a/{t}-{i}");
                s.put(&key, Bytes::from_static(b"x")).await?;
                if i % 2 == 0 {
                    let moved = format!("pd/b/{t}-{i}");
                    s.rename(&key, &moved).await?;
                    s.delete(&moved).await?;
                } else {
                    s.delete(&key).await?;
                }
            }
            Ok::<_, Error>(())
        })
    });
    for t in futures::future::join_all(tasks).await {
        t.expect("task")
            .expect("a put or rename beside deletes failed");
    }
}

/// Many writers of one key: every put succeeds and one of them is read whole.
pub async fn concurrent_puts(open: Opener<'_>) {
    let versions: Vec<Bytes> = (0..32u8).map(|i| Bytes::from(vec![i; 64 * 1024])).collect();
    let tasks = versions.iter().cloned().map(|v| {
        let s = open();
        tokio::spawn(async move { s.put("c/key", v).await })
    });
    for t in futures::future::join_all(tasks).await {
        t.expect("task").expect("put");
    }
    let s = open();
    let got = s.get_bytes("c/key").await.expect("get");
    assert!(versions.contains(&got), "a torn write was read");
    s.delete("c/key").await.expect("delete");
}

/// `content` padded with dots to the backend's smallest part, as every part but the last must be.
fn full_part(s: &dyn Storage, content: &[u8]) -> Bytes {
    let min = s.part_size().map_or(0, |p| p.min as usize);
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
    let p0 = if s.part_size().is_none() {
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
        matches!(again, Err(Error::NotFound { .. })),
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
        matches!(late, Err(Error::NotFound { .. })),
        "an aborted upload took a part: {late:?}"
    );
    let done = s.complete_multipart("a/obj", &id, vec![]).await;
    assert!(
        matches!(done, Err(Error::NotFound { .. })),
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

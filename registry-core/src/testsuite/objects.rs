//! The suite's cases of whole objects: reads, ranges, listing, pages, renames, concurrent writers.

use bytes::Bytes;
use futures::TryStreamExt;

use super::{Opener, bytes_of, keys, read_all};
use crate::storage::StorageError;
use crate::storage::{GetRange, ObjectMeta, StorageExt};

/// Put, get, head and delete of small objects, and missing keys.
pub async fn put_get_head_delete(open: Opener<'_>) {
    let s = open();
    assert!(matches!(
        s.get("a/b", None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.head("a/b").await,
        Err(StorageError::NotFound { .. })
    ));
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
            matches!(r, Err(StorageError::RangeNotSatisfiable { size: 10 })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        s.get("missing", Some(GetRange::Offset(0))).await,
        Err(StorageError::NotFound { .. })
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
        Err(StorageError::RangeNotSatisfiable { size: 100_000 })
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
        Err(StorageError::NotFound { .. })
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
        Err(StorageError::NotFound { .. })
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
            Ok::<_, StorageError>(())
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

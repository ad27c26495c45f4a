//! The filesystem backend: the shared suite (reads inline and on the blocking pool), keys and
//! links that try to leave the root, and how uploads complete.
use std::sync::Arc;

use registry_core::{Multipart, Storage};

use super::FilesystemStorage;

registry_core::storage_testsuite!({
    let dir = tempfile::tempdir().unwrap();
    move || Arc::new(FilesystemStorage::new(dir.path()).unwrap()) as Arc<dyn Storage>
});

mod reads_on_blocking_threads {
    use std::sync::Arc;

    use registry_core::Storage;

    use super::FilesystemStorage;

    registry_core::storage_testsuite!({
        let dir = tempfile::tempdir().unwrap();
        move || {
            let s = FilesystemStorage::new(dir.path())
                .unwrap()
                .inline_reads(false);
            Arc::new(s) as Arc<dyn Storage>
        }
    });
}

#[tokio::test]
async fn keys_cannot_escape_the_root() {
    use bytes::Bytes;
    let dir = tempfile::tempdir().unwrap();
    let s = FilesystemStorage::new(dir.path().join("root")).unwrap();
    std::fs::write(dir.path().join("x"), b"outside").unwrap();
    for bad in [
        "../x",
        "a/../../x",
        "a//b",
        ".tmp/x",
        "a/.multipart",
        "/etc/passwd",
    ] {
        assert!(super::root::relative(bad).is_err(), "{bad:?} accepted");
        assert!(s.get(bad, None).await.is_err(), "{bad:?} read");
        assert!(s.put(bad, Bytes::from_static(b"in")).await.is_err());
        assert!(s.delete(bad).await.is_err(), "{bad:?} deleted");
    }
    assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"outside");
}

/// A link planted in the store that leads out of it is never followed, by any operation, even
/// when it replaced a folder the store made itself.
#[tokio::test]
async fn links_out_of_the_root_are_never_followed() {
    use bytes::Bytes;
    use futures::TryStreamExt;
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"outside").unwrap();
    let s = FilesystemStorage::new(dir.path().join("root")).unwrap();
    s.put("repositories/evil/x", Bytes::from_static(b"x"))
        .await
        .unwrap();
    s.put("repositories/mine", Bytes::from_static(b"mine"))
        .await
        .unwrap();
    let evil = dir.path().join("root/repositories/evil");
    std::fs::remove_dir_all(&evil).unwrap();
    std::os::unix::fs::symlink(outside.path(), &evil).unwrap();

    assert!(
        s.put("repositories/evil/x", Bytes::from_static(b"x"))
            .await
            .is_err()
    );
    assert!(!outside.path().join("x").exists(), "wrote through the link");
    assert!(s.get("repositories/evil/secret", None).await.is_err());
    assert!(s.head("repositories/evil/secret").await.is_err());
    assert!(s.list("repositories/evil").await.is_err());
    assert!(s.list_after("repositories/evil", None, 10).await.is_err());
    assert!(
        s.rename("repositories/mine", "repositories/evil/mine")
            .await
            .is_err()
    );
    assert!(
        s.rename_if_absent("repositories/mine", "repositories/evil/mine")
            .await
            .is_err()
    );
    assert!(
        !outside.path().join("mine").exists(),
        "moved through the link"
    );
    assert!(s.delete("repositories/evil/secret").await.is_err());
    assert!(
        outside.path().join("secret").exists(),
        "deleted through the link"
    );
    // Listings skip the link itself.
    let listed = s.list("repositories").await.unwrap();
    assert!(listed.prefixes.is_empty(), "{listed:?}");
    let all: Vec<_> = s.list_all("").try_collect().await.unwrap();
    let keys: Vec<_> = all.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["repositories/mine"]);
}

fn chunks(parts: &[&'static [u8]]) -> Vec<registry_core::ByteStream> {
    use futures::StreamExt;
    parts
        .iter()
        .map(|&p| {
            let b = bytes::Bytes::from_static(p);
            futures::stream::once(async move { Ok(b) }).boxed()
        })
        .collect()
}

#[tokio::test]
async fn completing_parts_that_lie_end_to_end_is_a_rename() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let s = FilesystemStorage::new(dir.path()).unwrap();
    let id = s.create_multipart("obj").await.unwrap();
    let mut receipts = Vec::new();
    for (i, part) in chunks(&[b"aaa", b"bb", b"c"]).into_iter().enumerate() {
        receipts.push(s.put_part("obj", &id, i, part).await.unwrap());
    }
    let data = dir.path().join(".multipart").join(&id.0).join("data");
    let inode = std::fs::metadata(&data).unwrap().ino();
    s.complete_multipart("obj", &id, receipts).await.unwrap();
    let done = std::fs::metadata(dir.path().join("obj")).unwrap();
    assert_eq!(done.ino(), inode, "the parts were copied, not renamed");
    assert_eq!(std::fs::read(dir.path().join("obj")).unwrap(), b"aaabbc");
}

/// A crash after assembling and before the object is in place must leave the upload whole,
/// so that completing it again works: assembling moves nothing out of the upload's folder.
#[tokio::test]
async fn assembling_leaves_the_upload_whole_until_it_is_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let s = FilesystemStorage::new(dir.path()).unwrap();
    let id = s.create_multipart("obj").await.unwrap();
    let mut receipts = Vec::new();
    for (i, part) in chunks(&[b"aaa", b"bb"]).into_iter().enumerate() {
        receipts.push(s.put_part("obj", &id, i, part).await.unwrap());
    }
    let upload = dir.path().join(".multipart").join(&id.0);
    let (root, relative) = (&s.root, std::path::Path::new(".multipart").join(&id.0));
    let scratch = std::path::Path::new("scratch");
    let locked = super::upload::tests::locked(root, &relative);
    let file = super::upload::assemble(root, &locked, &relative, &receipts, scratch).unwrap();
    assert_eq!(
        file,
        relative.join("data"),
        "end to end: the data file itself"
    );
    assert_eq!(std::fs::read(dir.path().join(&file)).unwrap(), b"aaabb");
    // Parts out of order are copied to the scratch file; the upload still holds its data.
    let reversed: Vec<_> = receipts.iter().rev().cloned().collect();
    let copy = super::upload::assemble(root, &locked, &relative, &reversed, scratch).unwrap();
    assert_eq!(copy, scratch);
    assert_eq!(std::fs::read(dir.path().join(&copy)).unwrap(), b"bbaaa");
    assert!(upload.join("data").exists());
    drop(locked);
    // The "crash": nothing was installed. Completing again still works.
    s.complete_multipart("obj", &id, receipts).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("obj")).unwrap(), b"aaabb");
    assert!(!upload.exists());
}

#[tokio::test]
async fn bytes_left_by_a_crash_between_parts_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let s = FilesystemStorage::new(dir.path()).unwrap();
    let id = s.create_multipart("obj").await.unwrap();
    let mut parts = chunks(&[b"first-", b"second"]).into_iter();
    let p0 = s
        .put_part("obj", &id, 0, parts.next().unwrap())
        .await
        .unwrap();
    let data = dir.path().join(".multipart").join(&id.0).join("data");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&data)
        .unwrap();
    std::io::Write::write_all(&mut f, b"GARBAGE").unwrap();
    let p1 = s
        .put_part("obj", &id, 1, parts.next().unwrap())
        .await
        .unwrap();
    s.complete_multipart("obj", &id, vec![p0, p1])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("obj")).unwrap(),
        b"first-second"
    );
    assert!(!dir.path().join(".multipart").join(&id.0).exists());
}

/// Pages of a large folder whose names are kept between calls still show every put and delete,
/// from this process and from another one sharing the root.
#[tokio::test]
async fn pages_of_a_large_folder_follow_its_changes() {
    use bytes::Bytes;
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let s = FilesystemStorage::new(dir.path()).unwrap();
    futures::stream::iter(0..1500)
        .for_each_concurrent(32, |i| {
            let s = &s;
            async move { s.put(&format!("big/k{i:05}"), Bytes::new()).await.unwrap() }
        })
        .await;
    // A folder last changed an hour ago: its names are kept.
    let folder = std::fs::File::open(dir.path().join("big")).unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    folder.set_modified(hour_ago).unwrap();
    let page = |after: Option<&'static str>| {
        let s = &s;
        async move {
            let got = s.list_after("big", after, 3).await.unwrap();
            got.into_iter().map(|m| m.key).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None).await, ["big/k00000", "big/k00001", "big/k00002"]);
    assert_eq!(page(Some("k01497")).await, ["big/k01498", "big/k01499"]);
    s.put("big/a-first", Bytes::new()).await.unwrap();
    assert_eq!(
        page(None).await,
        ["big/a-first", "big/k00000", "big/k00001"]
    );
    folder.set_modified(hour_ago).unwrap();
    assert_eq!(page(None).await[0], "big/a-first");
    // Another process's change, through a store of its own over the same root.
    let other = FilesystemStorage::new(dir.path()).unwrap();
    other.delete("big/a-first").await.unwrap();
    other.delete("big/k00000").await.unwrap();
    assert_eq!(page(None).await, ["big/k00001", "big/k00002", "big/k00003"]);
}

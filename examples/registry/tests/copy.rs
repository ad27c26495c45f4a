//! `registry copy` through the real binary: a multi-platform image with its signature from a
//! registry to an OCI layout that skopeo and umoci read, back into another registry with the
//! same digests, through an `oci-archive` tar, a platform filter then the rest (only what was
//! missing is sent), and `--all-tags` between registries.
#![allow(clippy::unwrap_used)]

mod support;

use support::images::{digest_at, registry, run, seed};
use support::{Server, verify_layout_blobs};

#[cfg_attr(
    not(all(has_skopeo, has_umoci)),
    ignore = "skipped: skopeo and umoci are not installed (apt-get install skopeo umoci)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn images_go_to_layouts_and_archives_and_come_back_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Server::start(&tmp.path().join("a"), &[]);
    let b = Server::start(&tmp.path().join("b"), &[]);
    let image = seed(tmp.path(), &a.addr, "team/app", "v1", 1).await;
    let single = seed(tmp.path(), &a.addr, "team/app", "v2", 2).await;

    // To a layout, as skopeo and umoci read it.
    let dir = tmp.path().join("export");
    let layout = format!("oci:{}:v1", dir.display());
    let out = registry(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/team/app:v1", a.addr),
        &layout,
    ])
    .unwrap();
    assert!(out.contains(&image.index), "{out}");
    let inspected = run("skopeo", &["inspect", "--raw", &layout]);
    let raw: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
    run("skopeo", &["inspect", "--override-arch", "arm64", &layout]);
    let listed = run("umoci", &["ls", "--layout", &dir.to_string_lossy()]);
    assert!(listed.lines().any(|l| l.trim() == "v1"), "{listed}");
    // 2 platforms × (config + 2 layers + manifest), the index, the signature and its 2 blobs.
    assert_eq!(verify_layout_blobs(&dir), 2 * 4 + 1 + 3);
    // umoci reads a single image: export one child by digest under its own tag.
    let amd = format!("oci:{}:amd", dir.display());
    registry(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/team/app@{}", a.addr, image.children[0]),
        &amd,
    ])
    .unwrap();
    let stat = run(
        "umoci",
        &["stat", "--image", &format!("{}:amd", dir.display())],
    );
    assert!(stat.contains("LAYER"), "{stat}");

    // Back into another registry: the same digests, signature included.
    registry(&[
        "copy",
        "--dest-tls-verify=false",
        &layout,
        &format!("docker://{}/copied/app:v1", b.addr),
    ])
    .unwrap();
    assert_eq!(
        digest_at(&b.addr, "copied/app", "v1"),
        Some(image.index.clone())
    );
    for child in &image.children {
        assert_eq!(
            digest_at(&b.addr, "copied/app", child).as_ref(),
            Some(child)
        );
    }
    let referrers = support::Api::new(&b.addr)
        .get(&format!("/v2/copied/app/referrers/{}", image.index))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(referrers.contains(&image.signature), "{referrers}");

    // Through an archive.
    let tar = tmp.path().join("app.tar");
    let archive = format!("oci-archive:{}:v2", tar.display());
    registry(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/team/app:v2", a.addr),
        &archive,
    ])
    .unwrap();
    assert!(!tmp.path().join("app.tar.partial").exists());
    run("skopeo", &["inspect", "--raw", &archive]);
    registry(&[
        "copy",
        "--dest-tls-verify=false",
        &archive,
        &format!("docker://{}/archived/app:v2", b.addr),
    ])
    .unwrap();
    assert_eq!(
        digest_at(&b.addr, "archived/app", "v2"),
        Some(single.index.clone())
    );

    // A platform first, then the rest: only what is missing is sent.
    let filtered = format!("oci:{}:v1", tmp.path().join("filtered").display());
    let source = format!("docker://{}/team/app:v1", a.addr);
    let first = registry(&[
        "copy",
        "--src-tls-verify=false",
        "--platform",
        "linux/arm64",
        &source,
        &filtered,
    ])
    .unwrap();
    assert!(first.contains("3 manifests and 5 blobs"), "{first}");
    let rest = registry(&["copy", "--src-tls-verify=false", &source, &filtered]).unwrap();
    assert!(
        rest.contains("1 manifests and 3 blobs")
            && rest.contains("3 manifests and 0 blobs already there"),
        "{rest}"
    );

    // A whole repository between registries.
    let out = registry(&[
        "copy",
        "--all-tags",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}/team/app", a.addr),
        &format!("docker://{}/all/app", b.addr),
    ])
    .unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(digest_at(&b.addr, "all/app", "v1"), Some(image.index));
    assert_eq!(digest_at(&b.addr, "all/app", "v2"), Some(single.index));
}

#[test]
fn bad_endpoints_and_missing_images_fail_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Server::start(&tmp.path().join("a"), &[]);
    let err = registry(&["copy", "file:/x", "oci:/y"]).unwrap_err();
    assert!(err.contains("use docker://, oci: or oci-archive:"), "{err}");
    let err = registry(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/none/here:v1", a.addr),
        &format!("oci:{}:v1", tmp.path().join("out").display()),
    ])
    .unwrap_err();
    assert!(err.contains("v1"), "{err}");
    let err = registry(&[
        "copy",
        &format!("oci:{}", tmp.path().join("no-layout").display()),
        &format!("oci:{}:v1", tmp.path().join("out").display()),
    ])
    .unwrap_err();
    assert!(err.contains("not an OCI layout"), "{err}");
}

#[cfg_attr(
    not(has_skopeo),
    ignore = "skipped: skopeo is not installed (apt-get install skopeo)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn hostile_layouts_are_neither_read_whole_nor_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Server::start(&tmp.path().join("a"), &[]);
    // A layout whose "manifest" is a 1 GiB file (sparse: no disk taken): refused by its size,
    // before it is read, and quickly.
    let dir = tmp.path().join("huge");
    let hex = "ab".repeat(32);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{hex}","size":1073741824,"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
    );
    std::fs::write(dir.join("index.json"), index).unwrap();
    let huge = std::fs::File::create(dir.join("blobs/sha256").join(&hex)).unwrap();
    huge.set_len(1 << 30).unwrap();
    let started = std::time::Instant::now();
    let err = registry(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", dir.display()),
        &format!("docker://{}/team/app:v1", a.addr),
    ])
    .unwrap_err();
    assert!(err.contains("exceeds the limit"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the manifest was read: {:?}",
        started.elapsed()
    );

    // An export into a layout whose blobs/sha256 is a link elsewhere writes nothing there.
    seed(tmp.path(), &a.addr, "team/app", "v1", 3).await;
    let target = tmp.path().join("export");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(target.join("blobs")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, target.join("blobs/sha256")).unwrap();
    let err = registry(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/team/app:v1", a.addr),
        &format!("oci:{}:v1", target.display()),
    ])
    .unwrap_err();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

//! skopeo (a real client) against the real `registry` binary over TCP: push, inspect, tags,
//! pull back with every blob re-hashed, Docker schema2, multi-arch indexes, delete.
//!
//! Needs `skopeo` on the PATH (`apt-get install skopeo`); `./scripts/test.sh` installs it.
#![allow(clippy::unwrap_used)]

mod support;

use registry_core::Digest;
use support::{Layout, Server, skopeo, verify_layout_blobs};

struct Env {
    _tmp: tempfile::TempDir,
    cache: std::path::PathBuf,
    server: Server,
    root: std::path::PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("auth.json"), r#"{"auths":{}}"#).unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let root = tmp.path().to_owned();
    Env {
        _tmp: tmp,
        cache,
        server,
        root,
    }
}

fn raw_digest(e: &Env, reference: &str) -> String {
    let raw = skopeo(
        &e.cache,
        &["inspect", "--raw", "--tls-verify=false", reference],
    )
    .unwrap();
    Digest::of(raw.as_bytes()).to_string()
}

fn tags(e: &Env, repo: &str) -> Vec<String> {
    let out = skopeo(&e.cache, &["list-tags", "--tls-verify=false", repo]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut tags: Vec<String> = v["Tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

#[cfg_attr(
    not(has_skopeo),
    ignore = "skipped: skopeo is not installed (apt-get install skopeo)"
)]
#[test]
fn image_round_trip() {
    let e = env();
    let mut layout = Layout::new(&e.root.join("src"));
    let image = layout.image(1, 4, 1 << 20, "amd64");
    let local = image["digest"].as_str().unwrap().to_owned();
    layout.tag("big", image);
    let src = format!("oci:{}:big", layout.dir.display());
    let repo = format!("docker://{}/team/app", e.server.addr);

    skopeo(
        &e.cache,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src,
            &format!("{repo}:v1"),
        ],
    )
    .unwrap();
    assert_eq!(raw_digest(&e, &format!("{repo}:v1")), local);
    let inspected = skopeo(
        &e.cache,
        &["inspect", "--tls-verify=false", &format!("{repo}:v1")],
    )
    .unwrap();
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(inspected["Digest"], local);
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 4);

    skopeo(
        &e.cache,
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("{repo}:v1"),
            &format!("{repo}:v2"),
        ],
    )
    .unwrap();
    assert_eq!(tags(&e, &repo), ["v1", "v2"]);

    let pulled = e.root.join("pulled");
    skopeo(
        &e.cache,
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("{repo}:v1"),
            &format!("oci:{}:big", pulled.display()),
        ],
    )
    .unwrap();
    assert_eq!(
        verify_layout_blobs(&pulled),
        6,
        "4 layers, a config and the manifest"
    );
    assert_eq!(
        raw_digest(&e, &format!("oci:{}:big", pulled.display())),
        local
    );
    let by_digest = e.root.join("by-digest");
    skopeo(
        &e.cache,
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("{repo}@{local}"),
            &format!("oci:{}:x", by_digest.display()),
        ],
    )
    .unwrap();
    verify_layout_blobs(&by_digest);

    skopeo(
        &e.cache,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
            &src,
            &format!("{repo}-docker:v1"),
        ],
    )
    .unwrap();
    let raw = skopeo(
        &e.cache,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("{repo}-docker:v1"),
        ],
    )
    .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    skopeo(
        &e.cache,
        &["delete", "--tls-verify=false", &format!("{repo}@{local}")],
    )
    .unwrap();
    assert!(
        skopeo(
            &e.cache,
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("{repo}:v1")
            ]
        )
        .is_err()
    );
    assert!(tags(&e, &repo).is_empty());
}

#[cfg_attr(
    not(has_skopeo),
    ignore = "skipped: skopeo is not installed (apt-get install skopeo)"
)]
#[test]
fn multi_arch_index_round_trip() {
    let e = env();
    let mut layout = Layout::new(&e.root.join("src"));
    let amd = layout.image(2, 2, 200_000, "amd64");
    let arm = layout.image(3, 2, 200_000, "arm64");
    let index = layout.index(vec![amd.clone(), arm.clone()]);
    let local = index["digest"].as_str().unwrap().to_owned();
    layout.tag("multi", index);
    let src = format!("oci:{}:multi", layout.dir.display());
    let dest = format!("docker://{}/multi/arch:latest", e.server.addr);

    skopeo(
        &e.cache,
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &src,
            &dest,
        ],
    )
    .unwrap();
    assert_eq!(raw_digest(&e, &dest), local);
    let child = format!(
        "docker://{}/multi/arch@{}",
        e.server.addr,
        arm["digest"].as_str().unwrap()
    );
    assert_eq!(raw_digest(&e, &child), arm["digest"].as_str().unwrap());

    let pulled = e.root.join("pulled");
    skopeo(
        &e.cache,
        &[
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:multi", pulled.display()),
        ],
    )
    .unwrap();
    assert_eq!(
        verify_layout_blobs(&pulled),
        9,
        "2 x (2 layers, config, manifest) and the index"
    );
    assert_eq!(
        raw_digest(&e, &format!("oci:{}:multi", pulled.display())),
        local
    );
}

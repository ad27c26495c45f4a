//! podman (a real client) against the real `registry` binary over TCP: pull an image, push it to
//! another repository (podman recompresses the layers), pull that back into an empty store.
//!
//! Needs `podman` on the PATH (`apt-get install podman`); `./scripts/test.sh` installs it. Podman
//! runs with the vfs storage driver in temporary folders, as it does on machines without overlay.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::{Layout, Server, skopeo};

fn podman(root: &Path, args: &[&str]) -> String {
    let out = support::podman(root, args);
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[cfg_attr(
    not(all(has_skopeo, has_podman)),
    ignore = "skipped: skopeo and podman are not installed (apt-get install skopeo; apt-get install podman)"
)]
#[test]
fn pull_push_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("auth.json"), r#"{"auths":{}}"#).unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(9, 3, 300_000, "amd64");
    layout.tag("app", image);
    let first = format!("{}/podman/app:v1", server.addr);
    skopeo(
        &cache,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}:app", layout.dir.display()),
            &format!("docker://{first}"),
        ],
    )
    .unwrap();

    let id = podman(tmp.path(), &["pull", "-q", "--tls-verify=false", &first]);
    let second = format!("{}/podman/copy:v2", server.addr);
    podman(tmp.path(), &["tag", &first, &second]);
    podman(tmp.path(), &["push", "-q", "--tls-verify=false", &second]);
    podman(tmp.path(), &["rmi", "-a", "-f"]);
    assert_eq!(podman(tmp.path(), &["images", "-q"]), "");
    let again = podman(tmp.path(), &["pull", "-q", "--tls-verify=false", &second]);
    assert_eq!(again, id, "the image pulled back is not the one pushed");
    let tags = podman(
        tmp.path(),
        &[
            "search",
            "--list-tags",
            "--tls-verify=false",
            &format!("{}/podman/copy", server.addr),
        ],
    );
    assert!(tags.contains("v2"), "{tags}");
}

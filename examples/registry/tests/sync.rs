//! Pull sync through the real binary: from distribution 2.8.2, only the matching tags and, of
//! each index, only the platforms asked for, with the upstream's digests, and a tag moved
//! upstream moves here at the next round; from our own registry, under a prefix, signatures
//! included.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::distribution::Distribution;
use support::images::{digest_at, seed};
use support::wait::until;
use support::{Api, Server, skopeo};

#[cfg_attr(
    not(all(has_skopeo, has_docker_registry)),
    ignore = "skipped: skopeo and docker-registry are not installed (apt-get install skopeo docker-registry)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn sync_fetches_matching_tags_and_platforms_on_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = Distribution::start(tmp.path());
    let old = seed(tmp.path(), &peer.addr, "library/alpine", "3.19", 1).await;
    let new = seed(tmp.path(), &peer.addr, "library/alpine", "3.20", 2).await;
    let edge = seed(tmp.path(), &peer.addr, "library/alpine", "edge", 3).await;
    let ours = Server::start(&tmp.path().join("upstream"), &[]);
    let tools = seed(tmp.path(), &ours.addr, "team/tools", "v1", 4).await;

    let config = tmp.path().join("sync.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[sync]]
upstream = "http://{}"
repositories = ["library/alpine"]
tags = ["^3\\."]
platforms = ["linux/arm64"]
interval_secs = 1

[[sync]]
upstream = "http://{}"
repositories = ["team/tools"]
prefix = "mirror"
"#,
            peer.addr, ours.addr
        ),
    )
    .unwrap();
    let synced = Server::start(
        &tmp.path().join("synced"),
        &["--config", &config.to_string_lossy()],
    );
    let at = |repo: &str, reference: &str| digest_at(&synced.addr, repo, reference);

    until("the matching tags", Duration::from_secs(60), async || {
        at("library/alpine", "3.19").as_deref() == Some(&old.index)
            && at("library/alpine", "3.20").as_deref() == Some(&new.index)
            && at("mirror/team/tools", "v1").as_deref() == Some(&tools.index)
    })
    .await;
    for image in [&old, &new] {
        assert_eq!(
            at("library/alpine", &image.children[1]).as_ref(),
            Some(&image.children[1])
        );
        assert_eq!(
            at("library/alpine", &image.children[0]),
            None,
            "amd64 was fetched"
        );
    }
    assert_eq!(at("library/alpine", "edge"), None);
    assert_eq!(at("library/alpine", &edge.index), None);
    // A real client pulls the platform kept.
    let cache = tmp.path().join("skopeo-pull");
    std::fs::create_dir_all(&cache).unwrap();
    skopeo(
        &cache,
        &[
            "--override-arch",
            "arm64",
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/library/alpine:3.19", synced.addr),
            &format!("oci:{}:arm", tmp.path().join("pulled").display()),
        ],
    )
    .unwrap();
    // Everything of the other upstream, signature included.
    assert_eq!(
        at("mirror/team/tools", &tools.children[0]).as_ref(),
        Some(&tools.children[0])
    );
    let (_, referrers) = Api::new(&synced.addr)
        .answer(&format!("/v2/mirror/team/tools/referrers/{}", tools.index))
        .await;
    assert!(referrers.contains(&tools.signature), "{referrers}");

    // A tag moved upstream moves here at a later round.
    let moved = seed(tmp.path(), &peer.addr, "library/alpine", "3.19", 5).await;
    until("the moved tag", Duration::from_secs(60), async || {
        at("library/alpine", "3.19").as_deref() == Some(&moved.index)
    })
    .await;
}

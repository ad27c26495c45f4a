//! The real binary as a drop-in for distribution: its `config.yml` and `REGISTRY_*` variables
//! read (and an unsupported key refused at start, named with its line), and a store that
//! distribution 2.8.2 (`docker-registry`) wrote served as it is, then adopted by reindexing.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::distribution::Distribution;
use support::images::{digest_at, run, seed};
use support::login::{curl, htpasswd_of};
use support::{Server, skopeo};

#[cfg_attr(
    not(all(has_docker_registry, has_skopeo, has_curl)),
    ignore = "skipped: docker-registry, skopeo and curl are needed (apt-get install docker-registry skopeo curl)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn a_store_distribution_wrote_is_served_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let mut peer = Distribution::start(tmp.path());
    let image = seed(tmp.path(), &peer.addr, "team/app", "v1", 1).await;
    let signed = digest_at(&peer.addr, "team/app", "v1").unwrap();
    assert_eq!(signed, image.index);
    peer.stop();

    // distribution's own config.yml, pointed at its store, with its variables over it.
    let root = tmp.path().join("distribution-data");
    let yml = tmp.path().join("config.yml");
    std::fs::write(
        &yml,
        format!(
            "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n  headers:\n    X-Content-Type-Options: [nosniff]\nhealth:\n  storagedriver:\n    enabled: true\n",
            root.display()
        ),
    )
    .unwrap();
    let ours = Server::start_with_config(&yml, &[("REGISTRY_HTTP_ADDR", "127.0.0.1:0")]);
    // Every manifest by tag and by digest, with the same digests, and the signature by the
    // referrers API (which distribution 2.8 never indexed).
    assert_eq!(
        digest_at(&ours.addr, "team/app", "v1"),
        Some(image.index.clone())
    );
    for child in &image.children {
        assert_eq!(
            digest_at(&ours.addr, "team/app", child),
            Some(child.clone())
        );
    }
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let out = tmp.path().join("pulled");
    skopeo(
        &cache,
        &[
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/team/app:v1", ours.addr),
            &format!("oci:{}:v1", out.display()),
        ],
    )
    .unwrap();
    assert!(support::verify_layout_blobs(&out) >= 7);
    let listed = || {
        run(
            "curl",
            &[
                "-sS",
                &format!("http://{}/v2/team/app/referrers/{}", ours.addr, image.index),
            ],
        )
    };
    assert!(
        support::wait::holds_within(std::time::Duration::from_secs(30), || {
            listed().contains(&image.signature)
        }),
        "the signature never showed among the referrers: {}",
        listed()
    );
    let catalog = run(
        "curl",
        &["-sS", &format!("http://{}/v2/_catalog", ours.addr)],
    );
    assert!(catalog.contains("team/app"), "{catalog}");
    // config.yml's headers, and deletes as it allows them.
    let (_, head) = curl(&["-I", &format!("http://{}/v2/", ours.addr)]);
    assert!(
        head.to_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{head}"
    );
    drop(ours);
    // Reindexed: scrub finds the store consistent.
    let scrub = support::images::registry(&[
        "scrub",
        "--storage",
        &format!("fs:{}/docker/registry/v2", root.display()),
    ])
    .unwrap();
    assert!(scrub.contains(" 0 problems"), "{scrub}");
    // And its links recorded for garbage collection: after the first (full) collection, the
    // next reads only the records.
    let store = format!("fs:{}/docker/registry/v2", root.display());
    assert!(root.join("docker/registry/v2/index/collection").exists());
    for walked in [true, false] {
        let gc = support::images::registry(&["gc", "--storage", &store]).unwrap();
        assert_eq!(gc.contains("gc: walked the whole store"), walked, "{gc}");
    }
}

#[test]
fn unsupported_keys_of_a_distribution_config_are_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let yml = tmp.path().join("config.yml");
    std::fs::write(
        &yml,
        "version: 0.1\nstorage:\n  inmemory: {}\nredis:\n  addr: localhost:6379\nhttp:\n  addr: 127.0.0.1:0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .arg("--config")
        .arg(&yml)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4: redis"), "{err}");
    // check-config shows what each key became, and the configuration in force as TOML.
    std::fs::write(
        &yml,
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/registry\nhttp:\n  addr: :5000\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .arg("check-config")
        .arg(&yml)
        .env("REGISTRY_AUTH", "htpasswd")
        .env(
            "REGISTRY_AUTH_HTPASSWD_PATH",
            htpasswd_of(tmp.path(), &[("a", "b")]),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "# storage.filesystem (line 3): storage = \"fs:/srv/registry/docker/registry/v2\""
        ),
        "{text}"
    );
    assert!(text.contains("# auth.htpasswd.path"), "{text}");
    let toml_part: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let in_force: toml::Table = toml::from_str(&toml_part).unwrap();
    assert_eq!(in_force["listen"].as_str(), Some("0.0.0.0:5000"));
    assert_eq!(in_force["deletes"].as_bool(), Some(false));
}

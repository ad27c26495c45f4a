//! The pull-through cache through the real binary: upstreams on loopback (ours with token auth,
//! ours open, and distribution 2.8.2 from Debian's `docker-registry`), pulled through the mirror
//! by skopeo, podman and concurrent clients.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::distribution::Distribution;
use support::wait::until;
use support::{Api, Layout, Server, TestImage, noise, skopeo, verify_layout_blobs};

const USER: &str = "mirror";
const PASS: &str = "mirror-secret";

/// Our registry requiring logins through its own token server.
fn token_upstream(dir: &Path) -> Server {
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{USER}:{}\n", bcrypt::hash(PASS, 5).unwrap()),
    )
    .unwrap();
    let config = dir.join("upstream.toml");
    std::fs::write(
        &config,
        format!(
            "htpasswd = \"{}\"\n[token]\nissue = true\n",
            htpasswd.display()
        ),
    )
    .unwrap();
    Server::start(
        &dir.join("upstream"),
        &["--config", config.to_str().unwrap()],
    )
}

fn skopeo_cache(dir: &Path) -> std::path::PathBuf {
    let cache = dir.join("skopeo");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("auth.json"), r#"{"auths":{}}"#).unwrap();
    cache
}

/// Pushes a layout's `app` image to `dest` (`host/repo:tag`), logging in when `creds` are given.
fn push_layout(cache: &Path, layout: &Layout, dest: &str, creds: Option<&str>) {
    let src = format!("oci:{}:app", layout.dir.display());
    let dest = format!("docker://{dest}");
    let mut args = vec!["copy", "-q", "--all", "--dest-tls-verify=false"];
    if let Some(creds) = creds {
        args.extend(["--dest-creds", creds]);
    }
    args.extend([src.as_str(), dest.as_str()]);
    skopeo(cache, &args).unwrap();
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .unwrap_or(0.0)
}

async fn metrics(api: &Api) -> String {
    api.get("/metrics").await.unwrap().text().await.unwrap()
}

#[cfg_attr(
    not(all(has_skopeo, has_podman)),
    ignore = "skipped: skopeo and podman are not installed (apt-get install skopeo; apt-get install podman)"
)]
#[tokio::test]
async fn skopeo_and_podman_pull_through_a_token_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = token_upstream(tmp.path());
    let cache = skopeo_cache(tmp.path());
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(11, 2, 300_000, "amd64");
    layout.tag("app", image);
    let creds = format!("{USER}:{PASS}");
    push_layout(
        &cache,
        &layout,
        &format!("{}/library/app:v1", upstream.addr),
        Some(&creds),
    );

    let mirror = Server::start_with(
        &format!("fs:{}", tmp.path().join("mirror").display()),
        &["--mirror", &format!("http://{}", upstream.addr)],
        &[
            ("REGISTRY_MIRROR_USERNAME", USER),
            ("REGISTRY_MIRROR_PASSWORD", PASS),
        ],
    );
    let pulled = tmp.path().join("pulled");
    skopeo(
        &cache,
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/library/app:v1", mirror.addr),
            &format!("oci:{}:app", pulled.display()),
        ],
    )
    .unwrap();
    // Config, two layers, the manifest.
    assert_eq!(verify_layout_blobs(&pulled), 4);

    let out = support::podman(
        tmp.path(),
        &[
            "pull",
            "-q",
            "--tls-verify=false",
            &format!("{}/library/app:v1", mirror.addr),
        ],
    );
    assert!(
        out.status.success(),
        "podman pull through the mirror: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let api = Api::new(&mirror.addr);
    let text = metrics(&api).await;
    assert_eq!(
        metric(&text, r#"registry_mirror_misses_total{kind="blob"}"#),
        3.0,
        "{text}"
    );
    assert!(metric(&text, r#"registry_mirror_hits_total{kind="blob"}"#) >= 3.0);
    assert!(metric(&text, "registry_mirror_upstream_bytes_total") > 600_000.0);

    // Pushes into the mirror are refused, naming the upstream.
    let r = api
        .http
        .post(format!("{}/v2/library/app/blobs/uploads/", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("UNSUPPORTED") && body.contains("pull-through cache"),
        "{body}"
    );
}

#[cfg_attr(
    not(all(has_skopeo, has_docker_registry)),
    ignore = "skipped: skopeo and docker-registry are not installed (apt-get install skopeo; apt-get install docker-registry)"
)]
#[tokio::test]
async fn a_distribution_upstream_by_prefix_beside_local_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = Distribution::start(tmp.path());
    let cache = skopeo_cache(tmp.path());
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let amd = layout.image(21, 2, 200_000, "amd64");
    let arm = layout.image(22, 2, 200_000, "arm64");
    let index = layout.index(vec![amd, arm]);
    layout.tag("app", index);
    push_layout(&cache, &layout, &format!("{}/team/app:v1", peer.addr), None);
    let config = tmp.path().join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            "[[mirror.upstreams]]\nprefix = \"peer\"\nurl = \"http://{}\"\n",
            peer.addr
        ),
    )
    .unwrap();
    let mirror = Server::start(
        &tmp.path().join("mirror"),
        &["--config", config.to_str().unwrap()],
    );
    let pulled = tmp.path().join("pulled");
    skopeo(
        &cache,
        &[
            "copy",
            "-q",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/peer/team/app:v1", mirror.addr),
            &format!("oci:{}:app", pulled.display()),
        ],
    )
    .unwrap();
    // Index, two manifests, two configs, four layers.
    assert_eq!(verify_layout_blobs(&pulled), 9);

    // Outside the prefix, a normal registry.
    let api = Api::new(&mirror.addr);
    let own = TestImage::new(5, vec![noise(5, 50_000)]);
    api.push_image("local/app", "v1", &own).await.unwrap();
    assert_eq!(
        api.pull_verified("local/app", "v1").await.unwrap(),
        own.digest()
    );
    // A name the upstream lacks: its 404, named.
    let (status, body) = api.answer("/v2/peer/team/nothing/manifests/v1").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("MANIFEST_UNKNOWN") && body.contains(&peer.addr),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_fetch_each_blob_once() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Server::start(&tmp.path().join("upstream"), &[]);
    let image = TestImage::new(8, (0..3).map(|i| noise(80 + i, 2_000_000)).collect());
    Api::new(&upstream.addr)
        .push_image("team/app", "v1", &image)
        .await
        .unwrap();
    let mirror = Server::start_with(
        &format!("fs:{}", tmp.path().join("mirror").display()),
        &["--mirror", &format!("http://{}", upstream.addr)],
        &[],
    );
    let pulls: Vec<_> = (0..8)
        .map(|_| {
            let api = Api::new(&mirror.addr);
            tokio::spawn(async move { api.pull_verified("team/app", "v1").await })
        })
        .collect();
    for p in pulls {
        assert_eq!(p.await.unwrap().unwrap(), image.digest());
    }
    let text = metrics(&Api::new(&upstream.addr)).await;
    let fetched = metric(
        &text,
        r#"registry_http_requests_total{route="blob",method="GET",status="200"}"#,
    );
    assert_eq!(
        fetched, 4.0,
        "one upstream GET per blob (config and three layers)"
    );
}

#[tokio::test]
async fn cached_images_survive_the_upstream_and_moved_tags_are_seen_after_the_ttl() {
    let tmp = tempfile::tempdir().unwrap();
    let mut upstream = Server::start(&tmp.path().join("upstream"), &[]);
    let up = Api::new(&upstream.addr);
    let (first, second, never) = (
        TestImage::new(1, vec![noise(1, 40_000)]),
        TestImage::new(2, vec![noise(2, 40_000)]),
        TestImage::new(3, vec![noise(3, 40_000)]),
    );
    up.push_image("team/app", "v1", &first).await.unwrap();
    up.push_image("team/other", "v1", &never).await.unwrap();
    let mirror = Server::start_with(
        &format!("fs:{}", tmp.path().join("mirror").display()),
        &["--mirror", &format!("http://{}", upstream.addr)],
        &[("REGISTRY_MIRROR_TAG_TTL_SECS", "1")],
    );
    let api = Api::new(&mirror.addr);
    assert_eq!(
        api.pull_verified("team/app", "v1").await.unwrap(),
        first.digest()
    );

    // The tag moves upstream: seen once the TTL has passed.
    up.push_image("team/app", "v1", &second).await.unwrap();
    until("the moved tag seen", Duration::from_secs(20), async || {
        api.pull_verified("team/app", "v1").await.unwrap() == second.digest()
    })
    .await;
    assert_eq!(
        api.pull_verified("team/app", &first.digest().to_string())
            .await
            .unwrap(),
        first.digest()
    );

    // The upstream goes away: what is cached still pulls, by tag and digest, once the TTL has
    // passed and the mirror asks the upstream again (an upstream error counted).
    let upstream_addr = upstream.addr.clone();
    upstream.kill();
    let errors = |text: String| metric(&text, "registry_mirror_upstream_errors_total");
    let before = errors(metrics(&api).await);
    until(
        "the mirror asking the upstream again",
        Duration::from_secs(20),
        async || {
            assert_eq!(
                api.pull_verified("team/app", "v1").await.unwrap(),
                second.digest()
            );
            errors(metrics(&api).await) > before
        },
    )
    .await;
    assert_eq!(
        api.pull_verified("team/app", &first.digest().to_string())
            .await
            .unwrap(),
        first.digest()
    );
    // What never was cached fails with the upstream's failure named.
    let (status, body) = api.answer("/v2/team/other/manifests/v1").await;
    assert_eq!(status, 502);
    assert!(
        body.contains("UNAVAILABLE") && body.contains(&upstream_addr),
        "{body}"
    );
}

/// The SHA-256 of what `curl` downloads from `url`, streamed through `sha256sum`.
fn download_digest(url: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", "curl -sS -f \"$1\" | sha256sum", "_", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

/// A 512 MiB blob pulled through the mirror streams from the upstream to the client while it is
/// stored: the mirror's peak RSS stays under 64 MiB, and the bytes match, then and from the cache.
#[cfg_attr(
    not(has_curl),
    ignore = "skipped: curl is not installed (apt-get install curl)"
)]
#[test]
fn a_large_blob_streams_through_with_flat_memory() {
    const SIZE: usize = 512 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Server::start(&tmp.path().join("upstream"), &[]);
    let digest = support::push_streamed(&format!("http://{}", upstream.addr), "big/blob", SIZE, 9);
    let mirror = Server::start_with(
        &format!("fs:{}", tmp.path().join("mirror").display()),
        &["--mirror", &format!("http://{}", upstream.addr)],
        &[("REGISTRY_MIRROR_SPOOL_DIR", tmp.path().to_str().unwrap())],
    );
    let url = format!("http://{}/v2/big/blob/blobs/{digest}", mirror.addr);
    assert_eq!(download_digest(&url), digest.to_string());
    let peak_mib = mirror.peak_rss_kib() / 1024;
    eprintln!("peak RSS of the mirror after fetching 512 MiB: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB");
    drop(upstream);
    assert_eq!(download_digest(&url), digest.to_string());
    let spooled: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("registry-fetch-")
        })
        .collect();
    assert!(spooled.is_empty(), "spool files left: {spooled:?}");
}

/// An upstream that lies: an endless manifest, a blob whose bytes are not its digest's.
async fn lying_upstream() -> String {
    let app = axum::Router::new()
        .route("/v2/", axum::routing::get(|| async { "{}" }))
        .route(
            "/v2/evil/manifests/{reference}",
            axum::routing::get(|| async {
                let chunks = futures::stream::iter(
                    (0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 << 10])),
                );
                axum::body::Body::from_stream(chunks)
            }),
        )
        .route(
            "/v2/evil/blobs/{digest}",
            axum::routing::get(|| async { "not the bytes you asked for" }),
        )
        .route(
            "/v2/liar/manifests/{reference}",
            axum::routing::get(|| async {
                let image = TestImage::new(4, vec![noise(4, 100)]);
                let wrong = registry_core::Digest::of(b"some other manifest");
                (
                    [
                        (
                            "content-type",
                            "application/vnd.oci.image.manifest.v1+json".to_owned(),
                        ),
                        ("docker-content-digest", wrong.to_string()),
                    ],
                    image.manifest,
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_lying_upstream_stores_nothing() {
    let upstream = lying_upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mirror");
    let mirror = Server::start_with(
        &format!("fs:{}", data.display()),
        &["--mirror", &upstream],
        &[],
    );
    let api = Api::new(&mirror.addr);
    let (status, body) = api.answer("/v2/evil/manifests/v1").await;
    assert_eq!(status, 502);
    assert!(
        body.contains("UNAVAILABLE") && body.contains("over"),
        "{body}"
    );

    // A manifest whose bytes are not the digest the upstream announces for them.
    let (status, body) = api.answer("/v2/liar/manifests/v1").await;
    assert_eq!(status, 502);
    assert!(body.contains("that are not"), "{body}");
    assert!(
        !data.join("repositories/liar").exists(),
        "the lie was stored"
    );

    let digest = registry_core::Digest::of(b"the real bytes");
    // The answer is cut once the lie shows, so the client may see a broken connection (on the
    // next request too, when the pool reuses it); whatever bytes it gets are not the blob.
    for _ in 0..2 {
        let url = format!("{}/v2/evil/blobs/{digest}", api.base);
        let got = match api.http.get(url).send().await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        if let Ok(bytes) = got {
            assert_ne!(registry_core::Digest::of(&bytes), digest);
        }
    }
    let stored = data.join(format!(
        "blobs/sha256/{}/{}",
        &digest.hex()[..2],
        digest.hex()
    ));
    assert!(!stored.exists(), "the lie was stored");
    assert!(
        api.get("/metrics")
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .lines()
            .any(|l| {
                l.starts_with("registry_mirror_upstream_errors_total") && !l.ends_with(" 0")
            })
    );
}

/// Read-only, a mirror serves its cache and fetches nothing.
#[tokio::test]
async fn a_read_only_mirror_serves_its_cache_only() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Server::start(&tmp.path().join("upstream"), &[]);
    let up = Api::new(&upstream.addr);
    let (cached, other) = (
        TestImage::new(1, vec![noise(1, 10_000)]),
        TestImage::new(2, vec![noise(2, 10_000)]),
    );
    up.push_image("team/app", "v1", &cached).await.unwrap();
    up.push_image("team/other", "v1", &other).await.unwrap();
    let data = format!("fs:{}", tmp.path().join("mirror").display());
    let mirror_flag = format!("http://{}", upstream.addr);
    let mirror = Server::start_with(&data, &["--mirror", &mirror_flag], &[]);
    Api::new(&mirror.addr)
        .pull_verified("team/app", "v1")
        .await
        .unwrap();
    // A blob's last byte reaches the client only once the fetch has verified, stored and linked
    // it: the pull's end means the cache holds the image.
    drop(mirror);
    let frozen = Server::start_with(&data, &["--mirror", &mirror_flag, "--read-only"], &[]);
    let api = Api::new(&frozen.addr);
    assert_eq!(
        api.pull_verified("team/app", "v1").await.unwrap(),
        cached.digest()
    );
    let err = api.pull_verified("team/other", "v1").await.unwrap_err();
    assert!(err.contains("404"), "{err}");
}

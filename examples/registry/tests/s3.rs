//! The `registry` binary over S3 (`--storage s3://BUCKET/PREFIX`), against moto (an S3 imitation
//! that enforces the 5 MiB part minimum): skopeo round trip, two replicas sharing one bucket,
//! redirects to presigned URLs, pulls read as ranged GETs in flight, 503 when S3 is down, flat
//! memory on a 2 GiB push, and a push soak while the server collects garbage.
//!
//! Needs `moto_server` (`pip install 'moto[server]'`) and skopeo; `./scripts/test.sh` installs
//! both.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::OnceLock;

use registry_core::Digest;
use registry_storage::testing::MotoServer;
use support::{Api, Server, TestImage, noise, push_streamed};

fn moto() -> &'static MotoServer {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    MOTO.get_or_init(MotoServer::start)
}

/// A fresh bucket on moto, and the environment a registry needs to reach it.
fn bucket() -> (String, Vec<(&'static str, String)>) {
    let name = format!("reg-{}", uuid::Uuid::new_v4().simple());
    moto().bucket(&name);
    let env = vec![
        ("AWS_ENDPOINT_URL", moto().endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ];
    (name, env)
}

fn start(storage: &str, extra: &[&str], env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(storage, extra, &env)
}

#[cfg_attr(
    not(all(has_moto, has_skopeo)),
    ignore = "skipped: moto_server and skopeo are not installed (pip install 'moto[server]'; apt-get install skopeo)"
)]
#[test]
fn skopeo_round_trip() {
    let (bucket, env) = bucket();
    let server = start(&format!("s3://{bucket}/registry"), &[], &env);
    let tmp = tempfile::tempdir().unwrap();
    // Layers under a part, over one, and over two (16 MiB parts).
    support::skopeo_round_trip(&server.addr, tmp.path(), 17 << 20);
}

/// Replicas share nothing but the bucket: an upload begun on one goes on through the other, and
/// what one pushed the other serves.
#[cfg_attr(
    not(has_moto),
    ignore = "skipped: moto_server is not installed (pip install 'moto[server]')"
)]
#[tokio::test]
async fn two_replicas_share_one_bucket() {
    let (bucket, env) = bucket();
    let storage = format!("s3://{bucket}");
    let a = start(&storage, &[], &env);
    let b = start(&storage, &[], &env);
    let (api_a, api_b) = (Api::new(&a.addr), Api::new(&b.addr));

    api_a
        .upload_across(&api_b, "shared/x", &noise(3, 13 << 20), 6 << 20)
        .await;

    let image = TestImage::new(5, vec![noise(6, 7 << 20), noise(7, 100)]);
    api_a.push_image("shared/img", "v1", &image).await.unwrap();
    assert_eq!(
        api_b.pull_verified("shared/img", "v1").await.unwrap(),
        image.digest()
    );
}

/// With `blob_redirect_secs`, blob GETs answer 307 to a presigned URL that serves the bytes; HEAD
/// and manifests are still answered by the registry.
#[cfg_attr(
    not(has_moto),
    ignore = "skipped: moto_server is not installed (pip install 'moto[server]')"
)]
#[tokio::test]
async fn pulls_redirect_to_presigned_urls() {
    let (bucket, env) = bucket();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("registry.toml");
    std::fs::write(&config, "blob_redirect_secs = 60\n").unwrap();
    let server = start(
        &format!("s3://{bucket}/p"),
        &["--config", config.to_str().unwrap()],
        &env,
    );
    let api = Api::new(&server.addr);
    let data = noise(9, 6 << 20);
    let d = Digest::of(&data);
    api.push_blob_chunked("r", &data).await.unwrap();
    let direct = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = direct
        .get(format!("http://{}/v2/r/blobs/{d}", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 307);
    let target = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        target.starts_with(&moto().endpoint()) && target.contains("X-Amz-Signature"),
        "{target}"
    );
    let bytes = direct
        .get(&target)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(bytes == data, "the presigned URL served other bytes");
    let head = direct
        .head(format!("http://{}/v2/r/blobs/{d}", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let image = TestImage::new(11, vec![noise(12, 1000)]);
    api.push_image("r", "t", &image).await.unwrap();
    assert_eq!(api.pull_verified("r", "t").await.unwrap(), image.digest());
}

/// With `ranged_reads`, a blob larger than a part is read with several ranged GETs at once: the
/// whole blob and a range across part boundaries come back byte for byte.
#[cfg_attr(
    not(has_moto),
    ignore = "skipped: moto_server is not installed (pip install 'moto[server]')"
)]
#[tokio::test]
async fn large_blobs_pull_as_ranged_reads_in_flight() {
    let (bucket, env) = bucket();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("registry.toml");
    std::fs::write(&config, "[s3]\npart_size = 5242880\nranged_reads = 3\n").unwrap();
    let server = start(
        &format!("s3://{bucket}/p"),
        &["--config", config.to_str().unwrap()],
        &env,
    );
    let api = Api::new(&server.addr);
    let data = noise(13, (23 << 20) + 7);
    let d = Digest::of(&data);
    api.push_blob_chunked("r", &data).await.unwrap();
    let url = format!("{}/v2/r/blobs/{d}", api.base);
    let res = api.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.content_length(), Some(data.len() as u64));
    assert!(res.bytes().await.unwrap() == data, "other bytes served");
    let (start, end) = (4_000_000usize, 17_000_000usize);
    let res = api
        .http
        .get(&url)
        .header("range", format!("bytes={start}-{end}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert!(
        res.bytes().await.unwrap() == data[start..=end],
        "other bytes served for the range"
    );
}

/// S3 unreachable: requests that need it get 503 `UNAVAILABLE` quickly, the process stays up,
/// `/healthz` answers and `/readyz` says not ready.
#[cfg_attr(
    not(has_moto),
    ignore = "skipped: moto_server is not installed (pip install 'moto[server]')"
)]
#[tokio::test]
async fn s3_outage_is_503_and_the_server_lives_on() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "[s3]\nendpoint = \"{endpoint}\"\nallow_http = true\nregion = \"us-east-1\"\n\
             access_key_id = \"k\"\nsecret_access_key = \"s\"\nmax_retries = 1\ntimeout_secs = 3\n"
        ),
    )
    .unwrap();
    let server = start("s3://nowhere", &["--config", config.to_str().unwrap()], &[]);
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", server.addr);
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let res = http.get(url("/v2/a/tags/list")).send().await.unwrap();
        assert_eq!(res.status(), 503);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
        assert!(
            started.elapsed().as_secs() < 10,
            "took {:?}",
            started.elapsed()
        );
        let res = http.post(url("/v2/a/blobs/uploads/")).send().await.unwrap();
        assert_eq!(res.status(), 503);
    }
    assert_eq!(
        http.get(url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(http.get(url("/readyz")).send().await.unwrap().status(), 503);
}

/// A 2 GiB streamed push through the S3 backend needs no more memory than a 256 MiB one (which
/// already fills every part slot): the peak RSS grows by less than a part between them (memory
/// that grew with the blob would grow by hundreds of MiB; the allocator's own growth under load
/// was measured at 6 to 11 MiB), and stays under 64 MiB plus four 16 MiB parts (two in flight,
/// one gathering, one of slack for the request bodies handed to the HTTP client).
#[cfg_attr(
    not(all(has_moto, has_curl)),
    ignore = "skipped: moto_server and curl are not installed (pip install 'moto[server]'; apt-get install curl)"
)]
#[test]
fn two_gib_push_keeps_memory_flat() {
    let (bucket, env) = bucket();
    let server = start(&format!("s3://{bucket}"), &[], &env);
    let base = format!("http://{}", server.addr);
    push_streamed(&base, "small", 256 << 20, 76);
    let small_mib = server.peak_rss_kib() / 1024;
    push_streamed(&base, "big", 2 << 30, 77);
    let peak_mib = server.peak_rss_kib() / 1024;
    eprintln!(
        "peak RSS of the server after 256 MiB then 2 GiB pushes to S3: {small_mib} then {peak_mib} MiB"
    );
    assert!(
        peak_mib < small_mib + 16,
        "{small_mib} MiB, then {peak_mib} MiB"
    );
    assert!(peak_mib < 64 + 4 * 16, "peak RSS {peak_mib} MiB");
}

/// The push soak of `ops.rs` over S3 (flat listings, S3 dating objects to the second): no push
/// fails while the server collects every second (grace 3 s), every tag pulls, and past the grace
/// only what the tags reach is stored. (Its blobs fit in a tail; location records and `data/<id>`
/// are collected in `registry-storage/tests/gc.rs`, on object_store's InMemory with tiny parts.)
#[cfg_attr(
    not(has_moto),
    ignore = "skipped: moto_server is not installed (pip install 'moto[server]')"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_soak_while_collecting() {
    use futures::TryStreamExt;
    use registry_core::{Storage, paths};

    // A moto of its own: the shared one is busy with the 2 GiB push at the same time.
    let moto = MotoServer::start();
    let bucket = format!("soak-{}", uuid::Uuid::new_v4().simple());
    let options = registry_storage::S3Options {
        prefix: "registry".into(),
        ..moto.bucket(&bucket)
    };
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("REGISTRY_GC_INTERVAL_SECS", "1".to_owned()),
        ("REGISTRY_GC_GRACE_SECS", "3".to_owned()),
        ("REGISTRY_GC_DELETE_UNTAGGED", "true".to_owned()),
        ("REGISTRY_GC_HISTORY_DAYS", "0".to_owned()),
    ];
    let server = start(&format!("s3://{bucket}/registry"), &[], &env);
    let (pushes, tagged) =
        Api::push_soak(&server.addr, 3, std::time::Duration::from_secs(10)).await;
    let api = Api::new(&server.addr);
    for (p, (repo, image)) in tagged.iter().enumerate() {
        assert_eq!(
            api.pull_verified(repo, &format!("t{p}")).await.unwrap(),
            image.digest()
        );
    }
    let reachable: std::collections::BTreeSet<Digest> = tagged
        .iter()
        .flat_map(|(_, image)| {
            image
                .blobs
                .iter()
                .map(|b| Digest::of(b))
                .chain([image.digest()])
                .collect::<Vec<_>>()
        })
        .collect();
    let storage = options.build().unwrap();
    let stored = || async {
        let objects: Vec<_> = storage.list_all(paths::BLOBS).try_collect().await.unwrap();
        objects
            .iter()
            .filter_map(|o| paths::parse_blob_key(&o.key))
            .filter(|(_, kind)| *kind != paths::BlobObject::Used)
            .map(|(d, _)| d)
            .collect::<std::collections::BTreeSet<Digest>>()
    };
    // Checked below, with what collection reported.
    let _ = support::wait::within(std::time::Duration::from_secs(120), async || {
        stored().await == reachable
    })
    .await;
    let left = stored().await;
    let metrics = api.get("/metrics").await.unwrap().text().await.unwrap();
    let runs: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("registry_gc_runs_total"))
        .collect();
    assert_eq!(
        left.len(),
        reachable.len(),
        "{} blobs left, {} reachable; collections: {runs:?}",
        left.len(),
        reachable.len()
    );
    assert_eq!(left, reachable);
    assert!(!metrics.contains("result=\"error\""), "{runs:?}");
    for (p, (repo, _)) in tagged.iter().enumerate() {
        api.pull_verified(repo, &format!("t{p}")).await.unwrap();
    }
    println!("soak on S3: {pushes} pushes by 3 clients, {runs:?}");
}

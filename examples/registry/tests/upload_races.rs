//! A pusher racing requests on its own upload, through the real binary as the security review
//! did it: `PATCH`, `PUT` and `PATCH` at once on an upload of bytes another repository shares,
//! and `PATCH`es that end at the same offset. The shared blob stays intact, no blob is stored
//! with bytes that are not its digest, and `registry scrub` finds nothing wrong. On the
//! filesystem and on S3 (moto).
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::OnceLock;

use registry_core::Digest;
use registry_storage::testing::MotoServer;
use support::{Api, Server, noise};

/// Rounds of each race.
const ROUNDS: u64 = 40;
/// `PATCH`es racing from the start of one upload.
const RACERS: u64 = 2;

async fn patch(api: &Api, location: &str, range: Option<(u64, usize)>, body: Vec<u8>) -> u16 {
    let mut req = api.http.patch(format!("{}{location}", api.base));
    if let Some((start, len)) = range {
        req = req.header(
            "content-range",
            format!("{start}-{}", start + len as u64 - 1),
        );
    }
    req.body(body)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn put(api: &Api, location: &str, d: &Digest) -> u16 {
    api.http
        .put(format!("{}{location}?digest={d}", api.base))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn blob(api: &Api, repo: &str, d: &Digest) -> Vec<u8> {
    let res = api.get(&format!("/v2/{repo}/blobs/{d}")).await.unwrap();
    res.bytes().await.unwrap().to_vec()
}

async fn races(server: &Server) {
    // A connection per request: the server closes a connection whose request body it refused
    // unread, and a pooled client may pick that connection for its next request as it closes.
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        ..Api::new(&server.addr)
    };
    let shared = noise(1, 300_000);
    let d = Digest::of(&shared);
    api.push_blob_monolithic("library/base", &shared)
        .await
        .unwrap();
    for round in 0..ROUNDS {
        let loc = api.start_upload("bob/x").await.unwrap();
        assert_eq!(
            patch(&api, &loc, Some((0, shared.len())), shared.clone()).await,
            202
        );
        let evil = noise(100 + round, 50_000);
        let (done, _, _) = tokio::join!(
            put(&api, &loc, &d),
            patch(&api, &loc, None, evil.clone()),
            patch(&api, &loc, None, evil[..7].to_vec()),
        );
        if done == 201 {
            assert!(blob(&api, "bob/x", &d).await == shared, "round {round}");
        }
        assert!(
            blob(&api, "library/base", &d).await == shared,
            "round {round}: the shared blob changed"
        );

        let loc = api.start_upload("bob/y").await.unwrap();
        let racers: Vec<Vec<u8>> = (0..RACERS)
            .map(|i| noise(300 + round * RACERS + i, 100_000))
            .collect();
        let patches = racers
            .iter()
            .map(|b| patch(&api, &loc, Some((0, b.len())), b.clone()));
        futures::future::join_all(patches).await;
        let wanted = Digest::of(&racers[0]);
        if put(&api, &loc, &wanted).await == 201 {
            assert_eq!(
                Digest::of(&blob(&api, "bob/y", &wanted).await),
                wanted,
                "round {round}: a blob stored with bytes that are not its digest"
            );
        }
    }
}

/// `registry scrub` over the same storage exits 0.
fn scrub_is_clean(storage: &str, env: &[(&str, String)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(["scrub", "--storage", storage])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scrub: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_the_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    races(&server).await;
    drop(server);
    scrub_is_clean(&format!("fs:{}", tmp.path().join("data").display()), &[]);
}

#[cfg_attr(
    not(has_moto),
    ignore = "skipped: moto_server is not installed (pip install 'moto[server]')"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_s3() {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    let moto = MOTO.get_or_init(MotoServer::start);
    let bucket = format!("races-{}", uuid::Uuid::new_v4().simple());
    moto.bucket(&bucket);
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ];
    let storage = format!("s3://{bucket}/registry");
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_with(&storage, &[], &pairs);
    races(&server).await;
    drop(server);
    scrub_is_clean(&storage, &env);
}

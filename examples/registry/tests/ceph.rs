//! Stateless replicas on a real distributed S3 engine: two `registry` processes over one Ceph
//! (radosgw) bucket, with three OSDs keeping every object three times.
//!
//! Needs the cluster `scripts/ceph.sh start DIR` starts, and its `DIR/env` sourced
//! (`./scripts/test.sh` does both). Without it the tests are skipped (build.rs), except under
//! `CI`, where they run and fail: CI must run them.
#![allow(clippy::unwrap_used)]

mod support;

use registry_core::Digest;
use support::{Api, Server, TestImage, noise};

struct Ceph {
    endpoint: String,
    key: String,
    secret: String,
    bucket: String,
    dir: String,
}

/// The cluster `scripts/ceph.sh` started, from its `REGISTRY_TEST_CEPH_*` variables.
fn ceph() -> Ceph {
    let var = |k: &str| {
        std::env::var(format!("REGISTRY_TEST_CEPH_{k}")).unwrap_or_else(|_| {
            panic!("no Ceph cluster: start scripts/ceph.sh and export REGISTRY_TEST_CEPH_{k}")
        })
    };
    Ceph {
        endpoint: var("ENDPOINT"),
        key: var("KEY"),
        secret: var("SECRET"),
        bucket: var("BUCKET"),
        dir: var("DIR"),
    }
}

impl Ceph {
    /// A registry over a fresh prefix of the bucket (`prefix` shared by the replicas of a test).
    fn replica(&self, prefix: &str) -> Server {
        Server::start_with(
            &format!("s3://{}/{prefix}", self.bucket),
            &[],
            &[
                ("AWS_ENDPOINT_URL", &self.endpoint),
                ("AWS_ACCESS_KEY_ID", &self.key),
                ("AWS_SECRET_ACCESS_KEY", &self.secret),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ALLOW_HTTP", "true"),
            ],
        )
    }

    fn storage(&self) -> std::sync::Arc<dyn registry_core::Storage> {
        let options = registry_storage::S3Options {
            bucket: self.bucket.clone(),
            prefix: format!("suite-{}", uuid::Uuid::new_v4().simple()),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(self.key.clone()),
            secret_access_key: Some(self.secret.clone()),
            allow_http: Some(true),
            ..Default::default()
        };
        std::sync::Arc::new(options.build().unwrap())
    }

    /// Stops OSD `n` (SIGKILL) and returns a guard that starts it again.
    fn stop_osd(&self, n: u32) -> OsdBack {
        let pid = std::fs::read_to_string(format!("{}/run/osd.{n}.fpid", self.dir)).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success(), "could not stop osd.{n}");
        OsdBack {
            dir: self.dir.clone(),
            n,
        }
    }
}

struct OsdBack {
    dir: String,
    n: u32,
}

impl Drop for OsdBack {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/ceph.sh");
        let _ = std::process::Command::new(script)
            .args(["osd", &self.dir, &self.n.to_string()])
            .status();
    }
}

fn prefix() -> String {
    format!("replicas-{}", uuid::Uuid::new_v4().simple())
}

/// The shared backend suite on Ceph, every case (moto skips two).
mod suite {
    registry_core::storage_testsuite!([#[cfg_attr(
        not(has_ceph),
        ignore = "skipped: no Ceph cluster (scripts/ceph.sh)"
    )]] {
        let store = super::ceph().storage();
        move || store.clone()
    });
}

#[cfg_attr(not(has_ceph), ignore = "skipped: no Ceph cluster (scripts/ceph.sh)")]
#[tokio::test]
async fn an_upload_moves_between_replicas() {
    let ceph = ceph();
    let p = prefix();
    let (a, b) = (ceph.replica(&p), ceph.replica(&p));
    let (api_a, api_b) = (Api::new(&a.addr), Api::new(&b.addr));
    api_a
        .upload_across(&api_b, "moves/x", &noise(21, 23 << 20), 9 << 20)
        .await;
}

#[cfg_attr(not(has_ceph), ignore = "skipped: no Ceph cluster (scripts/ceph.sh)")]
#[tokio::test]
async fn pushed_through_one_pulled_through_the_other() {
    let ceph = ceph();
    let p = prefix();
    let (a, b) = (ceph.replica(&p), ceph.replica(&p));
    let image = TestImage::new(31, vec![noise(32, 20 << 20), noise(33, 3000)]);
    Api::new(&a.addr)
        .push_image("app/web", "v1", &image)
        .await
        .unwrap();
    let pulled = Api::new(&b.addr)
        .pull_verified("app/web", "v1")
        .await
        .unwrap();
    assert_eq!(pulled, image.digest());
}

/// Pushes racing through both replicas, sharing layers: every image pulls whole through either.
#[cfg_attr(not(has_ceph), ignore = "skipped: no Ceph cluster (scripts/ceph.sh)")]
#[tokio::test]
async fn concurrent_pushes_through_both_lose_nothing() {
    let ceph = ceph();
    let p = prefix();
    let (a, b) = (ceph.replica(&p), ceph.replica(&p));
    let shared = noise(40, 6 << 20);
    let images: Vec<TestImage> = (0..8)
        .map(|i| TestImage::new(50 + i, vec![shared.clone(), noise(60 + i, 70_000)]))
        .collect();
    let pushes = images.iter().enumerate().map(|(i, image)| {
        let api = Api::new(if i % 2 == 0 { &a.addr } else { &b.addr });
        async move {
            api.push_image("race/app", &format!("t{i}"), image)
                .await
                .unwrap();
        }
    });
    futures::future::join_all(pushes).await;
    for (i, image) in images.iter().enumerate() {
        for addr in [&a.addr, &b.addr] {
            let got = Api::new(addr)
                .pull_verified("race/app", &format!("t{i}"))
                .await
                .unwrap();
            assert_eq!(got, image.digest());
        }
    }
}

/// One OSD of three stops in the middle of a push: the push finishes (two copies are enough to
/// write) and the image pulls whole.
#[cfg_attr(not(has_ceph), ignore = "skipped: no Ceph cluster (scripts/ceph.sh)")]
#[tokio::test]
async fn a_stopped_osd_does_not_stop_pushes() {
    let ceph = ceph();
    let p = prefix();
    let (a, b) = (ceph.replica(&p), ceph.replica(&p));
    let (api_a, api_b) = (Api::new(&a.addr), Api::new(&b.addr));
    let data = noise(70, 40 << 20);
    let location = api_a.start_upload("osd/x").await.unwrap();
    let mid = api_a.patch(&location, 0, &data[..17 << 20]).await.unwrap();
    let osd = ceph.stop_osd(2);
    let end = api_b
        .patch(&location, mid, &data[17 << 20..])
        .await
        .unwrap();
    assert_eq!(end, data.len() as u64);
    api_a.complete(&location, &Digest::of(&data)).await.unwrap();
    let image = TestImage::new(71, vec![noise(72, 9 << 20)]);
    api_b.push_image("osd/img", "v1", &image).await.unwrap();
    assert_eq!(
        api_a.pull_verified("osd/img", "v1").await.unwrap(),
        image.digest()
    );
    let got = api_b
        .get(&format!("/v2/osd/x/blobs/{}", Digest::of(&data)))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got == data, "the blob lost bytes");
    drop(osd);
}

//! Crash consistency through the server: a client pushes images while the `registry` process is
//! killed with SIGKILL at random instants and restarted, 50 times (`CRASH_KILLS=N` for more).
//! After each restart: every manifest that got a 201 pulls with all digests verified, and an upload
//! interrupted by the kill either resumes from the offset the registry reports or is unknown.
//! At the end, scrub finds nothing inconsistent in the store.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_core::{Digest, Registry, RegistryConfig};
use registry_storage::FilesystemStorage;
use support::{Api, Server, TestImage, noise};

#[derive(Default)]
struct Progress {
    acked: Vec<(String, Digest)>,
    /// An upload begun and not finished: its location, the bytes the client had sent, the blob.
    open_upload: Option<(String, u64, Vec<u8>)>,
}

async fn pusher(api: Api, round: u64, progress: Arc<Mutex<Progress>>) {
    for i in 0u64.. {
        let seed = round * 10_000 + i;
        let layers = vec![
            noise(seed, 20_000 + (seed % 5) as usize * 30_000),
            noise(seed + 7, 5_000),
        ];
        let image = TestImage::new(seed, layers);
        // A layer pushed in chunks, remembered as open until it completes.
        let big = noise(seed + 13, 300_000);
        let Ok(loc) = api.start_upload("crash/app").await else {
            return;
        };
        progress.lock().unwrap().open_upload = Some((loc.clone(), 0, big.clone()));
        let mut offset = 0u64;
        for chunk in big.chunks(64 * 1024) {
            let Ok(o) = api.patch(&loc, offset, chunk).await else {
                return;
            };
            offset = o;
            if let Some(open) = progress.lock().unwrap().open_upload.as_mut() {
                open.1 = offset;
            }
        }
        if api.complete(&loc, &Digest::of(&big)).await.is_err() {
            return;
        }
        progress.lock().unwrap().open_upload = None;
        let tag = format!("r{round}-{i}");
        if api.push_image("crash/app", &tag, &image).await.is_err() {
            return;
        }
        progress.lock().unwrap().acked.push((tag, image.digest()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_sigkill() {
    let kills: u64 = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(50);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &[]);
    let mut all_acked: Vec<(String, Digest)> = Vec::new();
    let (mut resumed, mut unknown) = (0, 0);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..kills {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let task = tokio::spawn(pusher(Api::new(&server.addr), round, progress.clone()));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(20 + rng % 300)).await;
        server.kill();
        let _ = task.await;
        server = Server::start(&data, &[]);
        let api = Api::new(&server.addr);
        let Progress { acked, open_upload } = std::mem::take(&mut *progress.lock().unwrap());
        for (tag, digest) in &acked {
            let got = api
                .pull_verified("crash/app", tag)
                .await
                .unwrap_or_else(|e| panic!("acknowledged {tag} lost: {e}"));
            assert_eq!(got, *digest);
        }
        if let Some((loc, sent, blob)) = open_upload {
            match api.upload_offset(&loc).await.unwrap() {
                None => unknown += 1,
                Some(offset) => {
                    assert!(
                        offset <= blob.len() as u64 && offset >= sent.min(offset),
                        "offset {offset}"
                    );
                    let mut at = offset;
                    for chunk in blob[offset as usize..].chunks(100_000) {
                        at = api.patch(&loc, at, chunk).await.unwrap();
                    }
                    api.complete(&loc, &Digest::of(&blob)).await.unwrap();
                    let got = api
                        .get(&format!("/v2/crash/app/blobs/{}", Digest::of(&blob)))
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    assert_eq!(Digest::of(&got), Digest::of(&blob));
                    resumed += 1;
                }
            }
        }
        all_acked.extend(acked);
    }
    let api = Api::new(&server.addr);
    for (tag, digest) in &all_acked {
        assert_eq!(api.pull_verified("crash/app", tag).await.unwrap(), *digest);
    }
    server.kill();
    let registry = Registry::new(
        Arc::new(FilesystemStorage::new(&data).unwrap()),
        RegistryConfig::default(),
    );
    let report = registry_core::scrub::scrub(&registry).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    eprintln!(
        "{kills} kills: {} pushes acknowledged and verified, {resumed} interrupted uploads resumed, {unknown} reported unknown; scrub re-hashed {} blobs",
        all_acked.len(),
        report.blobs
    );
    assert!(
        all_acked.len() as u64 >= kills / 2,
        "too few pushes completed to test anything"
    );
}

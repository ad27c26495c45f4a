//! 64 clients push overlapping images (shared base layers, one shared tag) through the real server
//! while 16 others pull: no errors, every digest verified, and the shared tag ends on one of the
//! pushed manifests.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use support::{Api, Server, TestImage, noise};

const PUSHERS: u64 = 64;
const PULLERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_pushes_while_pulling() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let base: Vec<Vec<u8>> = (0..3).map(|i| noise(1000 + i, 200_000)).collect();
    let images: Vec<TestImage> = (0..PUSHERS)
        .map(|i| {
            let mut layers = base.clone();
            layers.push(noise(i, 50_000));
            TestImage::new(i, layers)
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let pulls = Arc::new(AtomicUsize::new(0));
    let pushed: HashSet<String> = images.iter().map(|i| i.digest().to_string()).collect();

    let pullers: Vec<_> = (0..PULLERS)
        .map(|_| {
            let (api, done, pulls, pushed) = (
                Api::new(&server.addr),
                done.clone(),
                pulls.clone(),
                pushed.clone(),
            );
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    match api.pull_verified("shared/app", "latest").await {
                        Ok(d) => {
                            assert!(
                                pushed.contains(&d.to_string()),
                                "latest is {d}, never pushed"
                            );
                            pulls.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.contains("MANIFEST_UNKNOWN") || e.contains("NAME_UNKNOWN") => {
                            tokio::task::yield_now().await
                        }
                        Err(e) => panic!("pull failed: {e}"),
                    }
                }
            })
        })
        .collect();
    let pushers: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let (api, image) = (Api::new(&server.addr), image.clone());
            tokio::spawn(async move {
                api.push_image("shared/app", &format!("c{i}"), &image)
                    .await?;
                api.put_manifest("shared/app", "latest", &image.manifest)
                    .await
            })
        })
        .collect();
    for p in pushers {
        p.await.unwrap().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for p in pullers {
        p.await.unwrap();
    }
    let api = Api::new(&server.addr);
    for (i, image) in images.iter().enumerate() {
        assert_eq!(
            api.pull_verified("shared/app", &format!("c{i}"))
                .await
                .unwrap(),
            image.digest()
        );
    }
    let latest = api.pull_verified("shared/app", "latest").await.unwrap();
    assert!(pushed.contains(&latest.to_string()));
    eprintln!(
        "{PUSHERS} pushers, {PULLERS} pullers: {} verified pulls of latest during the pushes",
        pulls.load(Ordering::Relaxed)
    );
}

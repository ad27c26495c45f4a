//! Requests racing on one upload, as a hostile pusher sends them: they may fail, but they never
//! change a blob other repositories share, and never store a blob whose bytes are not its digest.
#![allow(clippy::unwrap_used)]

#[allow(unused_macros)]
mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{body, repo};
use futures::TryStreamExt;
use registry_core::{
    ByteStream, Digest, Digester, Registry, RegistryConfig, Storage, StorageExt, UploadSession,
    paths,
};
use registry_storage::{FilesystemStorage, MemoryStorage, ObjectStorage};

/// Rounds per scenario: each is two uploads, raced by three requests and by [`RACERS`].
const ROUNDS: u64 = 24;
/// PATCHes racing from the start of one upload.
const RACERS: u64 = 6;

/// One process: every backend.
mod one_process {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory() {
        racing_requests_of_one_process(Arc::new(MemoryStorage::new())).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn filesystem() {
        let dir = tempfile::tempdir().unwrap();
        racing_requests_of_one_process(Arc::new(FilesystemStorage::new(dir.path()).unwrap())).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn object_store_memory() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let s = ObjectStorage::new(store, "").with_part_size(4, 8);
        racing_requests_of_one_process(Arc::new(s)).await
    }

    #[cfg_attr(
        not(has_moto),
        ignore = "skipped: moto_server is not installed (pip install 'moto[server]')"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn moto() {
        racing_requests_of_one_process(common::moto_bucket()).await
    }
}

/// Two processes sharing the storage race on one upload (their registries share no lock): what
/// the backend itself guarantees. Not on object_store's in-memory store, which assembles whatever
/// parts it holds whatever receipts it is given, and lives in one process anyway.
mod two_processes {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory() {
        racing_requests_of_two_processes(Arc::new(MemoryStorage::new())).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Arc::new(FilesystemStorage::new(dir.path()).unwrap()) as Arc<dyn Storage>;
        racing_requests_of_two_processes(open()).await
    }

    #[cfg_attr(
        not(has_moto),
        ignore = "skipped: moto_server is not installed (pip install 'moto[server]')"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn moto() {
        racing_requests_of_two_processes(common::moto_bucket()).await
    }
}

async fn racing_requests_of_one_process(s: Arc<dyn Storage>) {
    let r = Registry::new(s.clone(), RegistryConfig::default());
    races(&s, [r.clone(), r]).await;
}

async fn racing_requests_of_two_processes(s: Arc<dyn Storage>) {
    let open = || Registry::new(s.clone(), RegistryConfig::default());
    races(&s, [open(), open()]).await;
}

/// Bytes that do not compress, different for each seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A body that arrives after `delay_ms`, so that racing requests end in varying orders.
fn late_body(data: &[u8], delay_ms: u64) -> ByteStream {
    use futures::StreamExt;
    let data = Bytes::copy_from_slice(data);
    futures::stream::once(async move {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        Ok(data)
    })
    .boxed()
}

async fn read(r: &Registry, name: &str, d: &Digest) -> Vec<u8> {
    let blob = r.get_blob(&repo(name), d, None).await.unwrap();
    let chunks: Vec<Bytes> = blob.stream.try_collect().await.unwrap();
    chunks.concat()
}

/// The two races of the security review, [`ROUNDS`] times each, the requests spread over the
/// registries `rs` (one process, or two sharing the storage).
async fn races(s: &Arc<dyn Storage>, rs: [Registry; 2]) {
    let unit = s
        .capabilities()
        .part_size
        .map_or(1000, |p| p.target as usize);
    // Under the smallest part, so that object stores keep these bytes in the upload's tail.
    let tail = s
        .capabilities()
        .part_size
        .map_or(505, |p| (p.min as usize - 1).clamp(1, 1000));
    let shared = noise(1, unit * 2 + 3);
    let d = Digest::of(&shared);
    let base = repo("library/base");
    rs[0]
        .put_blob(&base, &d, body(&shared), None)
        .await
        .unwrap();
    let attacker = repo("bob/x");
    for round in 0..ROUNDS {
        // PATCH the shared bytes, then PUT with their digest while two more PATCHes append.
        let up = rs[0].start_upload(&attacker).await.unwrap();
        rs[0]
            .append_chunk(&attacker, &up.id, Some(0), body(&shared), None)
            .await
            .unwrap();
        let evil = noise(100 + round, unit + 1);
        let put = tokio::spawn({
            let (r, a, id, d) = (rs[1].clone(), attacker.clone(), up.id.clone(), d.clone());
            async move { r.complete_upload(&a, &id, &d, None).await }
        });
        let patches =
            [(&rs[0], &evil[..], round % 3), (&rs[1], &evil[..7], 1)].map(|(r, bytes, delay)| {
                let (r, a, id, b) = (r.clone(), attacker.clone(), up.id.clone(), bytes.to_vec());
                tokio::spawn(async move {
                    r.append_chunk(&a, &id, None, late_body(&b, delay), None)
                        .await
                })
            });
        let put = put.await.unwrap();
        for p in patches {
            let _ = p.await.unwrap();
        }
        if put.is_ok() {
            assert!(read(&rs[0], "bob/x", &d).await == shared, "round {round}");
        }
        assert!(
            read(&rs[1], "library/base", &d).await == shared,
            "round {round}: the shared blob changed"
        );

        // PATCHes ending at the same offset with other bytes, then a PUT naming the bytes of the
        // one whose session was saved last: the blob stored under that digest must hold them.
        let up = rs[0].start_upload(&attacker).await.unwrap();
        let racers: Vec<Vec<u8>> = (0..RACERS)
            .map(|i| noise(300 + round * RACERS + i, tail))
            .collect();
        let patches: Vec<_> = (0..RACERS)
            .map(|i| {
                let bytes = racers[i as usize].clone();
                let (r, a, id) = (rs[i as usize % 2].clone(), attacker.clone(), up.id.clone());
                let delay = (round + i) % 3;
                tokio::spawn(async move {
                    r.append_chunk(&a, &id, Some(0), late_body(&bytes, delay), None)
                        .await
                })
            })
            .collect();
        for p in patches {
            let _ = p.await.unwrap();
        }
        let session: UploadSession =
            serde_json::from_slice(&s.get_bytes(&paths::upload_session(&up.id)).await.unwrap())
                .unwrap();
        let state = hex::decode(&session.hash_state).unwrap();
        let winner = Digester::resume(&state).unwrap().finish();
        assert!(
            racers.iter().any(|b| Digest::of(b) == winner),
            "the session hashes no racer's bytes"
        );
        if rs[1]
            .complete_upload(&attacker, &up.id, &winner, None)
            .await
            .is_ok()
        {
            let stored = read(&rs[0], "bob/x", &winner).await;
            assert_eq!(
                Digest::of(&stored),
                winner,
                "round {round}: a blob was stored with bytes that are not its digest"
            );
        }
    }
    let report = registry_core::scrub::scrub(&rs[0]).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

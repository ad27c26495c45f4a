//! Crash consistency of `Registry` over `FilesystemStorage`: a child process pushes images (blobs
//! monolithic and chunked, manifests, tags) in a loop and is killed with SIGKILL at random instants.
//! After every kill: scrub finds nothing inconsistent (no partial blob visible, every link and tag
//! points at stored data) and every manifest the child acknowledged pulls with verified digests.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use registry_core::manifest::OCI_MANIFEST;
use registry_core::{ByteStream, Digest, Reference, Registry, RegistryConfig, RepositoryName};
use registry_storage::FilesystemStorage;

const ROOT_VAR: &str = "CRASH_TEST_ROOT";
const KILLS: usize = 12;

fn registry(root: &str) -> Registry {
    Registry::new(
        Arc::new(FilesystemStorage::new(root).unwrap()),
        RegistryConfig::default(),
    )
}

fn body(data: Vec<u8>) -> ByteStream {
    // Many small chunks, so a kill lands mid-stream often.
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(4096)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

/// The pushing child, which the parent starts with `CRASH_TEST_ROOT` set (and `--ignored`): prints
/// `acked REPO TAG DIGEST` after each manifest push returns.
#[tokio::test]
#[ignore = "the crash test's child: kill_at_random_instants_leaves_a_consistent_store runs it"]
async fn crash_child() {
    let root = std::env::var(ROOT_VAR).expect("CRASH_TEST_ROOT, set by the parent test");
    let r = registry(&root);
    let run = std::process::id();
    let mut out = std::io::stdout();
    for i in 0u64.. {
        let repo: RepositoryName = format!("crash/r{}", i % 3).parse().unwrap();
        let seed = (u64::from(run) << 20) + i;
        let layer: Vec<u8> = (0..(50_000 + (seed % 7) * 40_000))
            .map(|j| (j ^ seed).wrapping_mul(31) as u8)
            .collect();
        let (layer_digest, layer_size) = (Digest::of(&layer), layer.len());
        if i % 2 == 0 {
            r.put_blob(&repo, &layer_digest, body(layer), None)
                .await
                .unwrap();
        } else {
            let up = r.start_upload(&repo).await.unwrap();
            let (a, b) = layer.split_at(layer.len() / 2);
            r.append_chunk(&repo, &up.id, Some(0), body(a.to_vec()), None)
                .await
                .unwrap();
            r.append_chunk(&repo, &up.id, Some(a.len() as u64), body(b.to_vec()), None)
                .await
                .unwrap();
            r.complete_upload(&repo, &up.id, &layer_digest, None)
                .await
                .unwrap();
        }
        let config = format!("{{\"seed\":{seed}}}").into_bytes();
        let (config_digest, config_size) = (Digest::of(&config), config.len());
        r.put_blob(&repo, &config_digest, body(config), None)
            .await
            .unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
            config_size, layer_size
        );
        let tag = format!("t{run}-{i}");
        let info = r
            .put_manifest(
                &repo,
                &tag.parse().unwrap(),
                Some(OCI_MANIFEST),
                Bytes::from(manifest),
            )
            .await
            .unwrap();
        writeln!(out, "acked {repo} {tag} {}", info.digest).unwrap();
        out.flush().unwrap();
        if i % 5 == 4 {
            r.put_manifest(
                &repo,
                &"latest".parse().unwrap(),
                Some(OCI_MANIFEST),
                r.get_manifest(&repo, &Reference::Digest(info.digest))
                    .await
                    .unwrap()
                    .bytes,
            )
            .await
            .unwrap();
        }
    }
}

async fn verify(r: &Registry, acked: &[(String, String, String)]) {
    let report = registry_core::scrub::scrub(r).await.unwrap();
    assert!(
        report.problems.is_empty(),
        "inconsistent store: {:?}",
        report.problems
    );
    for (repo, tag, digest) in acked {
        let repo: RepositoryName = repo.parse().unwrap();
        let m = r.get_manifest(&repo, &tag.parse().unwrap()).await.unwrap();
        assert_eq!(m.info.digest.to_string(), *digest);
        assert_eq!(Digest::of(&m.bytes).to_string(), *digest);
        let parsed = registry_core::Manifest::parse(&m.bytes, None).unwrap();
        for d in parsed.blob_references() {
            let blob = r.get_blob(&repo, &d.digest, None).await.unwrap();
            let bytes: Vec<u8> = blob
                .stream
                .try_fold(Vec::new(), |mut a, c| async move {
                    a.extend_from_slice(&c);
                    Ok(a)
                })
                .await
                .unwrap();
            assert_eq!(
                Digest::of(&bytes),
                d.digest,
                "blob served with wrong content"
            );
        }
    }
    let latest: RepositoryName = "crash/r0".parse().unwrap();
    if let Ok(m) = r.get_manifest(&latest, &"latest".parse().unwrap()).await {
        assert_eq!(Digest::of(&m.bytes), m.info.digest);
    }
}

#[tokio::test]
async fn kill_at_random_instants_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_owned();
    let mut acked = Vec::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ROOT_VAR, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    let mut w = l.strip_prefix("acked ")?.split(' ');
                    Some((
                        w.next()?.to_owned(),
                        w.next()?.to_owned(),
                        w.next()?.to_owned(),
                    ))
                })
                .collect::<Vec<_>>()
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(150 + rng % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        acked.extend(reader.join().unwrap());
        verify(&registry(&root), &acked).await;
    }
    eprintln!("{} pushes acknowledged across {KILLS} kills", acked.len());
    assert!(
        acked.len() > KILLS,
        "the child acknowledged only {} pushes",
        acked.len()
    );
}

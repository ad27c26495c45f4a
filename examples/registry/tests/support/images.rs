//! Images seeded into a running registry for transfer tests (copy, replication, sync), and what
//! a registry holds, asked over HTTP.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::Command;

use registry_core::Digest;

use super::{Api, Layout, skopeo};

/// What [`seed`] pushed.
pub struct Seeded {
    /// The index's digest.
    pub index: String,
    /// The digests of its children: linux/amd64, then linux/arm64.
    pub children: Vec<String>,
    /// The digest of the signature whose subject is the index.
    pub signature: String,
}

/// Pushes to `addr` (plain HTTP) `repo:tag`, an index of a linux/amd64 and a linux/arm64 image
/// (`seed` varies the bytes), with skopeo, and a signature referring to the index.
pub async fn seed(tmp: &Path, addr: &str, repo: &str, tag: &str, seed: u64) -> Seeded {
    let dir = tmp.join(format!("seed-{seed}-{tag}"));
    let mut layout = Layout::new(&dir);
    let amd = layout.image(seed * 10 + 1, 2, 40_000, "amd64");
    let arm = layout.image(seed * 10 + 2, 2, 40_000, "arm64");
    let children = vec![
        amd["digest"].as_str().unwrap().to_owned(),
        arm["digest"].as_str().unwrap().to_owned(),
    ];
    let index = layout.index(vec![amd, arm]);
    let digest = index["digest"].as_str().unwrap().to_owned();
    let size = index["size"].as_u64().unwrap();
    layout.tag(tag, index);
    let cache = tmp.join(format!("skopeo-cache-{seed}"));
    std::fs::create_dir_all(&cache).unwrap();
    skopeo(
        &cache,
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", dir.display()),
            &format!("docker://{addr}/{repo}:{tag}"),
        ],
    )
    .unwrap();
    let signature = sign(addr, repo, &digest, size, seed).await;
    Seeded {
        index: digest,
        children,
        signature,
    }
}

/// Pushes a signature artifact whose subject is the index `digest` of `size` bytes; its digest.
pub async fn sign(addr: &str, repo: &str, digest: &str, size: u64, seed: u64) -> String {
    let api = Api::new(addr);
    let empty = b"{}";
    let payload = format!("signature {seed} of {digest}").into_bytes();
    api.push_blob_in_put(repo, empty).await.unwrap();
    api.push_blob_in_put(repo, &payload).await.unwrap();
    let signature = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::of(empty).to_string(), "size": 2 },
        "layers": [{ "mediaType": "application/vnd.example.signature.payload", "digest": Digest::of(&payload).to_string(), "size": payload.len() }],
        "subject": { "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size },
    }))
    .unwrap();
    let at = Digest::of(&signature).to_string();
    api.put_manifest(repo, &at, &signature).await.unwrap();
    at
}

/// The digest `reference` names in `repo` at `addr` (plain HTTP, anonymous), if it is there.
pub fn digest_at(addr: &str, repo: &str, reference: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "-I", "-H"])
        .arg(
            "accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .arg(format!("http://{addr}/v2/{repo}/manifests/{reference}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    if !text.starts_with("http/1.1 200") {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("docker-content-digest: "))
        .map(|v| v.trim().to_owned())
}

/// Runs `registry ARGS…`; its standard output, or why it failed.
pub fn registry(args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(format!(
            "registry {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Runs a tool that must succeed; its standard output.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

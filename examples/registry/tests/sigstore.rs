//! The sigstore clients against the real binary: `@sigstore/oci`, which GitHub's attestation
//! actions use, attaches a sigstore bundle (signed with `@sigstore/sign`) to an image as an OCI
//! referrer in token mode: it takes a token for the scope an upload's challenge asks
//! (`pull,push`), then checks the image's manifest with it.
#![allow(clippy::unwrap_used)]

mod support;

use support::login::{auth_file, htpasswd_of};
use support::sigstore::{key_pair, node};
use support::{Layout, Server, skopeo};

#[cfg_attr(
    not(all(has_sigstore, has_skopeo)),
    ignore = "skipped: node with the sigstore clients and skopeo are needed (npm ci --prefix examples/registry/tests/sigstore; apt-get install skopeo)"
)]
#[test]
fn sigstore_oci_attaches_a_bundle_in_token_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    let file = tmp.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "htpasswd = \"{}\"\n[token]\nissue = true\n[[access]]\nrepositories = [\"{{user}}/*\"]\nusers = [\"*\"]\nactions = [\"*\"]\n",
            users.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", file.to_str().unwrap()],
    );
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(101, 1, 10_000, "amd64");
    let digest = image["digest"].as_str().unwrap().to_owned();
    layout.tag("v1", image);
    skopeo(
        &auth_file(tmp.path(), "skopeo"),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:alice-pw",
            &format!("oci:{}:v1", layout.dir.display()),
            &format!("docker://{}/alice/app:v1", server.addr),
        ],
    )
    .unwrap();
    let key = tmp.path().join("signer.pem");
    key_pair(&key);
    let attached = node(
        "attach.mjs",
        &[
            &format!("{}/alice/app", server.addr),
            &digest,
            "alice",
            "alice-pw",
            key.to_str().unwrap(),
            "https://slsa.dev/provenance/v1",
        ],
    )
    .unwrap();
    let descriptor: serde_json::Value = serde_json::from_str(attached.trim()).unwrap();
    let referrer = descriptor["digest"].as_str().unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-u", "alice:alice-pw"])
        .arg(format!(
            "http://{}/v2/alice/app/referrers/{digest}",
            server.addr
        ))
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(manifests[0]["digest"], referrer);
    assert_eq!(
        manifests[0]["artifactType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
}

//! Client certificates through the real binary: a certificate the client CA signed identifies
//! its client (by common name, or by subject alternative name) for the access rules, with skopeo
//! and curl; without one the handshake fails when they are required, and a password login still
//! works when they are optional; a certificate from another CA is refused either way.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::login::{auth_file, await_audit, curl, htpasswd_of};
use support::pki::{ClientPki, client_pki};
use support::{Layout, Server, skopeo};

/// A server with TLS and the client CA, the certificate named `user` (an identity `cert:NAME`)
/// allowed to push `machines/*`, alice (password) everywhere, and `tls` as the `[tls]` table's
/// other keys.
fn start(dir: &Path, pki: &ClientPki, tls: &str, user: &str) -> Server {
    let users = htpasswd_of(dir, &[("alice", "alice-pw")]);
    let audit = dir.join("audit.jsonl");
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            r#"htpasswd = "{}"
[tls]
{tls}
[audit]
path = "{}"
[[access]]
repositories = ["machines/*"]
users = ["cert:{user}"]
actions = ["*"]
[[access]]
repositories = ["*"]
users = ["alice"]
actions = ["*"]
"#,
            users.display(),
            audit.display()
        ),
    )
    .unwrap();
    Server::start(
        &dir.join("data"),
        &[
            "--config",
            file.to_str().unwrap(),
            "--tls-cert",
            &pki.server_cert,
            "--tls-key",
            &pki.server_key,
            "--tls-client-ca",
            &pki.client_ca,
        ],
    )
}

/// curl against `url` presenting the certificate in `cert_dir`, if any (`-k`-free: trusting the
/// server CA there).
fn curl_with(cert_dir: &Path, client: bool, url: &str, extra: &[&str]) -> u16 {
    let ca = cert_dir.join("ca.crt");
    let (cert, key) = (cert_dir.join("client.cert"), cert_dir.join("client.key"));
    let mut args = vec!["--cacert", ca.to_str().unwrap()];
    if client {
        args.extend([
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ]);
    }
    args.extend(extra);
    args.push(url);
    curl(&args).0
}

#[cfg_attr(
    not(all(has_skopeo, has_curl)),
    ignore = "skipped: skopeo and curl are not installed (apt-get install skopeo; apt-get install curl)"
)]
#[test]
fn a_client_certificate_identifies_a_machine_and_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = client_pki(tmp.path());
    let server = start(tmp.path(), &pki, "client_auth = \"required\"", "machine1");
    let base = format!("https://{}", server.addr);

    assert_eq!(
        curl_with(&pki.machine1, true, &format!("{base}/v2/"), &[]),
        200
    );
    // A certificate whose common name is alice is `cert:alice`: not the htpasswd alice, who
    // may do everything.
    assert_eq!(
        curl_with(
            &pki.alice,
            true,
            &format!("{base}/v2/alice/app/tags/list"),
            &[]
        ),
        403
    );
    // No certificate, or one from another CA: the handshake fails (curl reports 000).
    assert_eq!(
        curl_with(&pki.no_client, false, &format!("{base}/v2/"), &[]),
        0
    );
    assert_eq!(
        curl_with(&pki.intruder, true, &format!("{base}/v2/"), &[]),
        0
    );
    // A password is no way around a required certificate.
    assert_eq!(
        curl_with(
            &pki.no_client,
            false,
            &format!("{base}/v2/"),
            &["-u", "alice:alice-pw"]
        ),
        0
    );

    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(41, 2, 30_000, "amd64");
    layout.tag("app", image);
    let src = format!("oci:{}:app", layout.dir.display());
    let auth = auth_file(tmp.path(), "skopeo");
    let cert_dir = pki.machine1.to_str().unwrap();
    skopeo(
        &auth,
        &[
            "copy",
            "-q",
            "--dest-cert-dir",
            cert_dir,
            &src,
            &format!("docker://{}/machines/app:v1", server.addr),
        ],
    )
    .unwrap();
    skopeo(
        &auth,
        &[
            "inspect",
            "--cert-dir",
            cert_dir,
            &format!("docker://{}/machines/app:v1", server.addr),
        ],
    )
    .unwrap();
    let refused = skopeo(
        &auth,
        &[
            "copy",
            "-q",
            "--dest-cert-dir",
            cert_dir,
            &src,
            &format!("docker://{}/other/app:v1", server.addr),
        ],
    )
    .unwrap_err();
    assert!(
        refused.contains("denied") || refused.contains("403"),
        "{refused}"
    );
    await_audit(&tmp.path().join("audit.jsonl"), "machine1's push", |text| {
        text.lines().any(|l| {
            l.contains("\"kind\":\"write\"") && l.contains("\"identity\":\"cert:machine1\"")
        })
    });
}

#[cfg_attr(
    not(has_curl),
    ignore = "skipped: curl is not installed (apt-get install curl)"
)]
#[test]
fn optional_certificates_leave_passwords_working_and_can_name_by_san() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = client_pki(tmp.path());
    let server = start(
        tmp.path(),
        &pki,
        "client_auth = \"optional\"\nclient_name = \"san\"",
        "machine1@example.com",
    );
    let base = format!("https://{}", server.addr);
    let catalog = format!("{base}/v2/machines/app/tags/list");
    // Identified by the SAN the rules name: allowed in machines/* (404: nothing pushed yet).
    assert_eq!(curl_with(&pki.machine1, true, &catalog, &[]), 404);
    // Without a certificate: anonymous, then a password.
    assert_eq!(curl_with(&pki.no_client, false, &catalog, &[]), 401);
    assert_eq!(
        curl_with(&pki.no_client, false, &catalog, &["-u", "alice:alice-pw"]),
        404
    );
    // Another CA's certificate fails the handshake even when certificates are optional.
    assert_eq!(curl_with(&pki.intruder, true, &catalog, &[]), 0);
    // A certificate named like the htpasswd user alice is `cert:alice@example.com` (here, by
    // SAN), not alice: none of her rights.
    let hers = format!("{base}/v2/alice/app/tags/list");
    assert_eq!(curl_with(&pki.alice, true, &hers, &[]), 403);
    assert_eq!(
        curl_with(&pki.no_client, false, &hers, &["-u", "alice:alice-pw"]),
        404
    );
}

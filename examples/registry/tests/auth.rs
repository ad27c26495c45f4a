//! Login and TLS with real clients against the real binary: `--htpasswd` (Basic auth, every
//! endpoint refused without credentials), and `--tls-cert/--tls-key` with a test CA that skopeo,
//! podman and curl trust through `--cert-dir`/`--cacert`; HTTP/2 by ALPN.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::login::{PASS, USER, auth_file, curl, htpasswd};
use support::pki::test_pki;
use support::{Layout, Server, skopeo};

/// Every endpoint, called without credentials, answers 401 with a challenge starting so.
fn every_endpoint_refused(base: &str, challenge: &str) {
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let upload = "0123456789abcdef0123456789abcdef";
    let endpoints = [
        ("GET", "/v2/".to_owned()),
        ("GET", "/v2/_catalog".to_owned()),
        ("GET", "/v2/a/tags/list".to_owned()),
        ("GET", "/v2/a/manifests/latest".to_owned()),
        ("HEAD", "/v2/a/manifests/latest".to_owned()),
        ("PUT", "/v2/a/manifests/latest".to_owned()),
        ("DELETE", format!("/v2/a/manifests/{d}")),
        ("GET", format!("/v2/a/blobs/{d}")),
        ("HEAD", format!("/v2/a/blobs/{d}")),
        ("DELETE", format!("/v2/a/blobs/{d}")),
        ("POST", "/v2/a/blobs/uploads/".to_owned()),
        ("POST", format!("/v2/a/blobs/uploads/?mount={d}&from=b")),
        ("GET", format!("/v2/a/blobs/uploads/{upload}")),
        ("PATCH", format!("/v2/a/blobs/uploads/{upload}")),
        ("PUT", format!("/v2/a/blobs/uploads/{upload}?digest={d}")),
        ("DELETE", format!("/v2/a/blobs/uploads/{upload}")),
        ("GET", format!("/v2/a/referrers/{d}")),
    ];
    for (method, path) in &endpoints {
        let url = format!("{base}{path}");
        let args = if *method == "HEAD" {
            vec!["-I", &url]
        } else {
            vec!["-X", method, "--data-binary", "", &url]
        };
        let (code, head) = curl(&args);
        assert_eq!(code, 401, "{method} {path}");
        assert!(
            head.to_lowercase()
                .contains(&format!("www-authenticate: {}", challenge.to_lowercase())),
            "{method} {path}: {head}"
        );
    }
}

#[cfg_attr(
    not(has_curl),
    ignore = "skipped: curl is not installed (apt-get install curl)"
)]
#[test]
fn every_endpoint_needs_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--htpasswd", &htpasswd(tmp.path())],
    );
    let base = format!("http://{}", server.addr);
    every_endpoint_refused(&base, "Basic realm=\"registry\"");
    let started = Instant::now();
    let (code, _) = curl(&["-u", &format!("{USER}:wrong"), &format!("{base}/v2/")]);
    assert_eq!(code, 401);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "a failed login is answered at once"
    );
    assert_eq!(
        curl(&["-u", &format!("nobody:{PASS}"), &format!("{base}/v2/")]).0,
        401
    );
    assert_eq!(
        curl(&["-u", &format!("{USER}:{PASS}"), &format!("{base}/v2/")]).0,
        200
    );
    assert_eq!(
        curl(&[
            "-u",
            &format!("{USER}:{PASS}"),
            &format!("{base}/v2/_catalog")
        ])
        .0,
        200
    );
}

#[cfg_attr(
    not(all(has_skopeo, has_curl)),
    ignore = "skipped: skopeo and curl are not installed (apt-get install skopeo; apt-get install curl)"
)]
#[test]
fn skopeo_login_push_pull_over_plain_http() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--htpasswd", &htpasswd(tmp.path())],
    );
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(21, 2, 100_000, "amd64");
    layout.tag("app", image);
    let user = auth_file(tmp.path(), "user");
    let anon = auth_file(tmp.path(), "anon");
    let host = server.addr.clone();
    assert!(
        skopeo(
            &user,
            &[
                "login",
                "--tls-verify=false",
                "-u",
                USER,
                "-p",
                "wrong",
                &host
            ]
        )
        .is_err()
    );
    skopeo(
        &user,
        &["login", "--tls-verify=false", "-u", USER, "-p", PASS, &host],
    )
    .unwrap();
    let src = format!("oci:{}:app", layout.dir.display());
    let dest = format!("docker://{host}/{USER}/app:v1");
    skopeo(
        &user,
        &["copy", "-q", "--dest-tls-verify=false", &src, &dest],
    )
    .unwrap();
    skopeo(&user, &["inspect", "--tls-verify=false", &dest]).unwrap();
    let err = skopeo(&anon, &["inspect", "--tls-verify=false", &dest]).unwrap_err();
    assert!(
        err.to_lowercase().contains("auth") || err.contains("401"),
        "{err}"
    );
    assert!(
        skopeo(
            &anon,
            &[
                "copy",
                "-q",
                "--dest-tls-verify=false",
                &src,
                &format!("docker://{host}/anon/app:v1")
            ]
        )
        .is_err()
    );
    skopeo(&user, &["logout", &host]).unwrap();
    assert!(skopeo(&user, &["inspect", "--tls-verify=false", &dest]).is_err());
}

#[cfg_attr(
    not(all(has_skopeo, has_podman, has_curl)),
    ignore = "skipped: skopeo and podman and curl are not installed (apt-get install skopeo; apt-get install podman; apt-get install curl)"
)]
#[test]
fn tls_with_a_test_ca_for_skopeo_podman_and_curl() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, cert, key) = test_pki(tmp.path());
    let server = Server::start(
        &tmp.path().join("data"),
        &[
            "--htpasswd",
            &htpasswd(tmp.path()),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let host = server.addr.clone();
    let ca = certs.join("ca.crt");
    let ca = ca.to_str().unwrap();
    let (code, _) = curl(&[
        "--cacert",
        ca,
        "--http2",
        "-u",
        &format!("{USER}:{PASS}"),
        "-w",
        "\n%{http_version}",
        &format!("https://{host}/v2/"),
    ]);
    assert_eq!(code, 2, "HTTP/2 was not negotiated");
    let (code, _) = curl(&[
        "--cacert",
        ca,
        "--http1.1",
        "-u",
        &format!("{USER}:{PASS}"),
        &format!("https://{host}/v2/"),
    ]);
    assert_eq!(code, 200);
    assert_eq!(
        curl(&[&format!("https://{host}/v2/")]).0,
        0,
        "an untrusted certificate was accepted"
    );
    // Plain HTTP on the TLS port gets a readable 400, as Go servers answer, and nothing else.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .arg(format!("http://{host}/v2/"))
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert_eq!(
        plain.trim_end(),
        "Client sent an HTTP request to an HTTPS server.\n\n400",
        "plain HTTP on the TLS port"
    );

    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(22, 2, 100_000, "amd64");
    let digest = image["digest"].as_str().unwrap().to_owned();
    layout.tag("app", image);
    let user = auth_file(tmp.path(), "user");
    let cert_dir = certs.to_str().unwrap();
    skopeo(
        &user,
        &[
            "login",
            "--cert-dir",
            cert_dir,
            "-u",
            USER,
            "-p",
            PASS,
            &host,
        ],
    )
    .unwrap();
    let dest = format!("docker://{host}/{USER}/app:v1");
    skopeo(
        &user,
        &[
            "copy",
            "-q",
            "--dest-cert-dir",
            cert_dir,
            &format!("oci:{}:app", layout.dir.display()),
            &dest,
        ],
    )
    .unwrap();
    let raw = skopeo(&user, &["inspect", "--raw", "--cert-dir", cert_dir, &dest]).unwrap();
    assert_eq!(
        registry_core::Digest::of(raw.as_bytes()).to_string(),
        digest
    );
    assert!(
        skopeo(
            &auth_file(tmp.path(), "other"),
            &["login", "--tls-verify=true", "-u", USER, "-p", PASS, &host]
        )
        .is_err(),
        "login without the CA succeeded"
    );

    let podman = |args: &[&str]| {
        let out = support::podman(tmp.path(), args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(
        !podman(&[
            "login",
            "--cert-dir",
            cert_dir,
            "-u",
            USER,
            "-p",
            "wrong",
            &host
        ])
        .0
    );
    let (ok, err) = podman(&[
        "login",
        "--cert-dir",
        cert_dir,
        "-u",
        USER,
        "-p",
        PASS,
        &host,
    ]);
    assert!(ok, "podman login: {err}");
    let (ok, err) = podman(&[
        "pull",
        "-q",
        "--cert-dir",
        cert_dir,
        &format!("{host}/{USER}/app:v1"),
    ]);
    assert!(ok, "podman pull: {err}");
    let (ok, err) = podman(&[
        "tag",
        &format!("{host}/{USER}/app:v1"),
        &format!("{host}/{USER}/copy:v2"),
    ]);
    assert!(ok, "podman tag: {err}");
    let (ok, err) = podman(&[
        "push",
        "-q",
        "--cert-dir",
        cert_dir,
        &format!("{host}/{USER}/copy:v2"),
    ]);
    assert!(ok, "podman push: {err}");
}

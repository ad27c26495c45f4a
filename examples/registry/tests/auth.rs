//! Login and TLS with real clients against the real binary: `--htpasswd` (Basic auth, every
//! endpoint refused without credentials), and `--tls-cert/--tls-key` with a test CA that skopeo,
//! podman and curl trust through `--cert-dir`/`--cacert`; HTTP/2 by ALPN.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::pki::test_pki;
use support::{Layout, Server, skopeo};

const USER: &str = "testuser";
const PASS: &str = "testpass";

fn htpasswd(dir: &Path) -> String {
    let path = dir.join("htpasswd");
    std::fs::write(
        &path,
        format!("{USER}:{}\n", bcrypt::hash(PASS, 5).unwrap()),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(0);
    (code, text)
}

fn auth_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let cache = dir.join(name);
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("auth.json"), r#"{"auths":{}}"#).unwrap();
    cache
}

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
    assert_eq!(
        curl(&[&format!("http://{host}/v2/")]).0,
        0,
        "plain HTTP answered on the TLS port"
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

#[cfg_attr(
    not(all(has_skopeo, has_podman, has_curl)),
    ignore = "skipped: skopeo and podman and curl are not installed (apt-get install skopeo; apt-get install podman; apt-get install curl)"
)]
#[test]
fn built_in_token_issuer_with_access_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let users = tmp.path().join("htpasswd");
    std::fs::write(
        &users,
        format!(
            "{USER}:{}\nadmin:{}\n",
            bcrypt::hash(PASS, 5).unwrap(),
            bcrypt::hash("adminpass", 5).unwrap()
        ),
    )
    .unwrap();
    let config = tmp.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            r#"htpasswd = "{}"
[token]
issue = true
service = "registry.test"
[groups]
admins = ["admin"]
[[access]]
repositories = ["{{user}}/*"]
users = ["*"]
actions = ["*"]
[[access]]
repositories = ["public/*"]
users = ["anonymous"]
actions = ["pull"]
[[access]]
repositories = ["public/*"]
groups = ["admins"]
actions = ["push"]
catalog = true
"#,
            users.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let host = server.addr.clone();
    let (code, head) = curl(&[&format!("http://{host}/v2/")]);
    assert_eq!(code, 401);
    assert!(
        head.contains(&format!(
            "Bearer realm=\"http://{host}/token\",service=\"registry.test\""
        )),
        "{head}"
    );

    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(23, 1, 50_000, "amd64");
    layout.tag("app", image);
    let src = format!("oci:{}:app", layout.dir.display());
    let user = auth_file(tmp.path(), "user");
    let admin = auth_file(tmp.path(), "admin");
    let anon = auth_file(tmp.path(), "anon");
    let tls = "--tls-verify=false";
    assert!(
        skopeo(&user, &["login", tls, "-u", USER, "-p", "wrong", &host]).is_err(),
        "wrong password accepted"
    );
    skopeo(&user, &["login", tls, "-u", USER, "-p", PASS, &host]).unwrap();
    skopeo(
        &admin,
        &["login", tls, "-u", "admin", "-p", "adminpass", &host],
    )
    .unwrap();
    let own = format!("docker://{host}/{USER}/app:v1");
    skopeo(
        &user,
        &["copy", "-q", "--dest-tls-verify=false", &src, &own],
    )
    .unwrap();
    let other = skopeo(
        &user,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{host}/admin/app:v1"),
        ],
    );
    assert!(other.is_err(), "pushed into another user's namespace");
    let public = format!("docker://{host}/public/app:v1");
    assert!(
        skopeo(
            &user,
            &["copy", "-q", "--dest-tls-verify=false", &src, &public]
        )
        .is_err(),
        "a user pushed to public/"
    );
    skopeo(
        &admin,
        &["copy", "-q", "--dest-tls-verify=false", &src, &public],
    )
    .unwrap();
    skopeo(&anon, &["inspect", tls, &public]).unwrap();
    assert!(
        skopeo(&anon, &["inspect", tls, &own]).is_err(),
        "anonymous pull of a private repository"
    );
    assert!(
        skopeo(&admin, &["inspect", tls, &own]).is_err(),
        "admin read another user's repository"
    );
    skopeo(&user, &["inspect", tls, &own]).unwrap();

    // podman over plain HTTP, through the token flow.
    let podman = |args: &[&str]| support::podman(tmp.path(), args);
    assert!(
        !podman(&["login", tls, "-u", USER, "-p", "wrong", &host])
            .status
            .success()
    );
    let out = podman(&["login", tls, "-u", USER, "-p", PASS, &host]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = podman(&["pull", "-q", tls, &format!("{host}/{USER}/app:v1")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !podman(&[
            "push",
            "-q",
            tls,
            &format!("{host}/{USER}/app:v1"),
            &format!("docker://{host}/admin/stolen:v1")
        ])
        .status
        .success()
    );

    // The OAuth2 form: a password grant with a refresh token, then a refresh grant.
    let post = |form: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-d", form, &format!("http://{host}/token")])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let scope = format!("repository:{USER}/app:pull");
    let first = post(&format!(
        "grant_type=password&username={USER}&password={PASS}&service=registry.test&scope={scope}&access_type=offline&client_id=test"
    ));
    let refresh = first["refresh_token"]
        .as_str()
        .expect("no refresh token")
        .to_owned();
    assert!(first["access_token"].is_string());
    let again = post(&format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=registry.test&scope={scope}&client_id=test"
    ));
    let token = again["access_token"].as_str().unwrap();
    let (code, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://{host}/v2/{USER}/app/tags/list"),
    ]);
    assert_eq!(code, 200);
    let (code, head) = curl(&[
        "-X",
        "DELETE",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://{host}/v2/{USER}/app/manifests/v1"),
    ]);
    assert_eq!(code, 401, "a pull token deleted");
    assert!(head.contains("insufficient_scope"), "{head}");
    let wrong = post(&format!(
        "grant_type=password&username={USER}&password=nope&service=registry.test&scope={scope}"
    ));
    assert!(wrong.get("access_token").is_none());
    let (code, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {refresh}"),
        &format!("http://{host}/v2/{USER}/app/tags/list"),
    ]);
    assert_eq!(code, 401, "a refresh token was accepted as an access token");
}

/// Polls `check` every 100 ms until it holds, failing after 30 s with `what`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status of `GET /v2/` with Basic credentials.
fn basic_status(host: &str, user: &str, password: &str) -> u16 {
    curl(&[
        "-u",
        &format!("{user}:{password}"),
        &format!("http://{host}/v2/"),
    ])
    .0
}

#[cfg_attr(
    not(has_curl),
    ignore = "skipped: curl is not installed (apt-get install curl)"
)]
#[test]
fn htpasswd_changes_take_effect_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("htpasswd");
    let entry = |user: &str, pw: &str| format!("{user}:{}\n", bcrypt::hash(pw, 5).unwrap());
    std::fs::write(&file, entry(USER, PASS) + &entry("bob", "bobpass")).unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--htpasswd", file.to_str().unwrap()],
    );
    let host = server.addr.clone();
    assert_eq!(basic_status(&host, USER, PASS), 200);
    assert_eq!(basic_status(&host, "bob", "bobpass"), 200);
    // Bob is removed and the password changes: both are refused without a restart, although
    // the server remembered both passwords as verified.
    std::fs::write(&file, entry(USER, "newpass")).unwrap();
    eventually("the new password accepted", || {
        basic_status(&host, USER, "newpass") == 200
    });
    assert_eq!(basic_status(&host, USER, PASS), 401, "the old password");
    assert_eq!(basic_status(&host, "bob", "bobpass"), 401, "a removed user");
    // A broken file leaves the users as they were; SIGHUP reads it again at once.
    std::fs::write(&file, "not an htpasswd file").unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    eventually("the broken file reported", || {
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("SIGHUP") || l.contains("the users stay as they were"))
    });
    assert_eq!(basic_status(&host, USER, "newpass"), 200);
    std::fs::write(&file, entry("carol", "carolpass")).unwrap();
    Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    eventually("a user added", || {
        basic_status(&host, "carol", "carolpass") == 200
    });
}

#[cfg_attr(
    not(has_curl),
    ignore = "skipped: curl is not installed (apt-get install curl)"
)]
#[test]
fn refresh_tokens_die_with_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("htpasswd");
    let entry = |pw: &str| format!("{USER}:{}\n", bcrypt::hash(pw, 5).unwrap());
    std::fs::write(&file, entry(PASS)).unwrap();
    let config = tmp.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "htpasswd = \"{}\"\n[token]\nissue = true\nservice = \"svc\"\n",
            file.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let host = server.addr.clone();
    let post = |form: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-d", form, &format!("http://{host}/token")])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let login = |pw: &str| {
        post(&format!(
            "grant_type=password&username={USER}&password={pw}&service=svc&access_type=offline&client_id=t"
        ))
    };
    let refresh = login(PASS)["refresh_token"].as_str().unwrap().to_owned();
    let grant = format!("grant_type=refresh_token&refresh_token={refresh}&service=svc&client_id=t");
    assert!(post(&grant)["access_token"].is_string());
    std::fs::write(&file, entry("changed")).unwrap();
    eventually("the new password accepted", || {
        login("changed")["access_token"].is_string()
    });
    assert!(
        post(&grant).get("access_token").is_none(),
        "a refresh token survived a password change"
    );
}

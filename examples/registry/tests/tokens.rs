//! Tokens with real clients against the real binary: the built-in issuer with access rules,
//! htpasswd changes seen without a restart, and refresh tokens that die with the password.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::login::{PASS, USER, auth_file, curl};
use support::{Layout, Server, skopeo};

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

/// Waits (30 s at most) until `check` holds, failing with `what`.
fn eventually(what: &str, check: impl FnMut() -> bool) {
    support::wait::until_blocking(what, Duration::from_secs(30), check)
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

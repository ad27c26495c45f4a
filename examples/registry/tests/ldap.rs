//! LDAP logins through the real binary against Debian's slapd: a directory user logs in with
//! skopeo and pushes to their namespace, a wrong password and an unknown user are refused, a
//! directory group grants pull, and each login lands in the audit log.
#![allow(clippy::unwrap_used)]

mod support;

use support::login::{auth_file, await_audit};
use support::slapd::{BASE, SERVICE_DN, SERVICE_PASSWORD, Slapd};
use support::{Layout, Server, skopeo};

#[cfg_attr(
    not(all(has_slapd, has_skopeo)),
    ignore = "skipped: slapd and skopeo are not installed (apt-get install slapd skopeo)"
)]
#[test]
fn directory_users_log_in_push_and_pull_by_group() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = Slapd::start(&tmp.path().join("ldap"));
    let secret = tmp.path().join("ldap.pass");
    std::fs::write(&secret, format!("{SERVICE_PASSWORD}\n")).unwrap();
    let audit = tmp.path().join("audit.jsonl");
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[ldap]
url = "{url}"
bind_dn = "{SERVICE_DN}"
bind_password_file = "{secret}"
user_base = "ou=people,{BASE}"
user_filter = "(uid={{username}})"
group_base = "ou=groups,{BASE}"
group_filter = "(member={{dn}})"

[audit]
path = "{audit}"

[[access]]
repositories = ["{{user}}/*"]
users = ["*"]
actions = ["*"]

[[access]]
repositories = ["carol/*"]
groups = ["readers"]
actions = ["pull"]
"#,
            url = slapd.url,
            secret = secret.display(),
            audit = audit.display(),
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let host = server.addr.clone();
    let carol = auth_file(tmp.path(), "carol");
    let dave = auth_file(tmp.path(), "dave");
    let login = |auth: &std::path::Path, user: &str, password: &str| {
        skopeo(
            auth,
            &[
                "login",
                "--tls-verify=false",
                "-u",
                user,
                "-p",
                password,
                &host,
            ],
        )
    };
    assert!(login(&carol, "carol", "wrong").is_err(), "a wrong password");
    assert!(
        login(&carol, "nobody", "carol-pw").is_err(),
        "an unknown user"
    );
    assert!(
        login(&carol, "carol", "").is_err(),
        "an empty password (an anonymous bind)"
    );
    login(&carol, "carol", "carol-pw").unwrap();
    login(&dave, "dave", "dave-pw").unwrap();

    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(51, 2, 40_000, "amd64");
    layout.tag("app", image);
    let src = format!("oci:{}:app", layout.dir.display());
    let dest = format!("docker://{host}/carol/app:v1");
    skopeo(
        &carol,
        &["copy", "-q", "--dest-tls-verify=false", &src, &dest],
    )
    .unwrap();
    // Dave's group may pull carol's repository, not push to it.
    skopeo(&dave, &["inspect", "--tls-verify=false", &dest]).unwrap();
    let refused = skopeo(
        &dave,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{host}/carol/other:v1"),
        ],
    )
    .unwrap_err();
    assert!(
        refused.contains("denied") || refused.contains("403"),
        "{refused}"
    );
    // Nobody outside the group may read it.
    let anon = auth_file(tmp.path(), "anon");
    assert!(skopeo(&anon, &["inspect", "--tls-verify=false", &dest]).is_err());

    let has = |lines: &str, kind: &str, who: &str| {
        lines.lines().any(|l| {
            l.contains(&format!("\"kind\":\"{kind}\""))
                && l.contains(&format!("\"identity\":\"{who}\""))
        })
    };
    let lines = await_audit(&audit, "the logins and the push", |lines| {
        has(lines, "login", "carol")
            && has(lines, "login", "dave")
            && has(lines, "login_failed", "nobody")
            && has(lines, "login_failed", "carol")
            && has(lines, "write", "carol")
    });
    assert!(
        !lines.contains("carol-pw") && !lines.contains("dave-pw"),
        "{lines}"
    );
}

/// A server whose `[ldap]` is `url` (plus `extra` keys), alice being `carol` of the directory.
fn start_with_ldap(dir: &std::path::Path, url: &str, extra: &str) -> Server {
    let secret = dir.join("ldap.pass");
    std::fs::write(&secret, SERVICE_PASSWORD).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[ldap]
url = "{url}"
bind_dn = "{SERVICE_DN}"
bind_password_file = "{secret}"
user_base = "ou=people,{BASE}"
{extra}
"#,
            secret = secret.display(),
        ),
    )
    .unwrap();
    Server::start(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

#[cfg_attr(
    not(all(has_slapd, has_curl)),
    ignore = "skipped: slapd and curl are not installed (apt-get install slapd curl)"
)]
#[test]
fn the_directory_is_reached_over_ldaps_and_starttls_with_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, cert, key) = support::pki::test_pki(tmp.path());
    let slapd = Slapd::start_with(&tmp.path().join("ldap"), Some((&cert, &key)));
    let ca = certs.join("ca.crt");
    let ldaps = slapd.ldaps.clone().unwrap();
    let login = |server: &Server, password: &str| {
        support::login::curl(&[
            "-u",
            &format!("carol:{password}"),
            &format!("http://{}/v2/", server.addr),
        ])
        .0
    };
    for (i, (url, extra)) in [
        (ldaps.as_str(), format!("ca_file = \"{}\"", ca.display())),
        (
            slapd.url.as_str(),
            format!("starttls = true\nca_file = \"{}\"", ca.display()),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("tls{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let server = start_with_ldap(&dir, url, &extra);
        assert_eq!(login(&server, "carol-pw"), 200, "{url} {extra}");
        assert_eq!(login(&server, "wrong"), 401, "{url} {extra}");
    }
    // Without the directory's CA (the system's roots do not know it), the directory cannot be
    // asked: the client is told to retry (503), not that its password is wrong.
    let dir = tmp.path().join("untrusted");
    std::fs::create_dir_all(&dir).unwrap();
    let server = start_with_ldap(&dir, &ldaps, "");
    assert_eq!(login(&server, "carol-pw"), 503);
}

#[cfg_attr(
    not(all(has_slapd, has_curl)),
    ignore = "skipped: slapd and curl are not installed (apt-get install slapd curl)"
)]
#[test]
fn directory_names_are_canonical_for_rules_the_throttle_and_the_audit_log() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = Slapd::start(&tmp.path().join("ldap"));
    let audit = tmp.path().join("audit.jsonl");
    let extra = format!(
        "[throttle]\nmax_failures = 3\ninitial_lockout_secs = 60\n[audit]\npath = \"{}\"\n\
         [[access]]\nrepositories = [\"{{user}}/*\"]\nusers = [\"*\"]\nactions = [\"*\"]\n",
        audit.display()
    );
    let server = start_with_ldap(tmp.path(), &slapd.url, &extra);
    let login = |from: &str, user: &str, password: &str, path: &str| {
        support::login::curl(&[
            "--interface",
            from,
            "-u",
            &format!("{user}:{password}"),
            &format!("http://{}{path}", server.addr),
        ])
        .0
    };
    // `CAROL` is carol as the directory spells her: her namespace, her name in the audit log.
    assert_eq!(login("127.0.0.1", "CAROL", "carol-pw", "/v2/"), 200);
    assert_eq!(
        login("127.0.0.1", "CAROL", "carol-pw", "/v2/carol/app/tags/list"),
        404,
        "allowed in carol/* (nothing pushed yet)"
    );
    await_audit(&audit, "carol's login as CAROL", |text| {
        text.lines()
            .any(|l| l.contains("\"kind\":\"login\"") && l.contains("\"identity\":\"carol\""))
    });
    // Failures under three spellings, from three addresses, count against one user…
    for (i, user) in ["CAROL", "Carol", " carol"].iter().enumerate() {
        let from = format!("127.0.0.{}", 10 + i);
        assert_eq!(login(&from, user, &format!("guess-{i}"), "/v2/"), 401);
    }
    // …who is then locked under every spelling, her right password included.
    for user in ["carol", "CAROL", "carol "] {
        assert_eq!(
            login("127.0.0.20", user, "carol-pw", "/v2/"),
            429,
            "{user:?}"
        );
    }
    // Dave is not.
    assert_eq!(login("127.0.0.20", "dave", "dave-pw", "/v2/"), 200);
}

//! OpenID Connect logins through the real binary against a real provider (oauth2-mock-server,
//! see `tests/oidc/provider.mjs`): skopeo pushes with a token as its password and gets the
//! registry's own tokens for it; an expired token, one for another audience and one from an
//! unknown issuer are refused; a claim-templated rule confines a token to its repository; a
//! groups claim grants pull; htpasswd users log in beside; the audit log names the token's user.
//! The provider's identities are its own (`oidc:NAME`): a `sub` of `alice` is not the htpasswd
//! alice, a `groups` claim of `admins` is not the configuration's group, and nothing a provider
//! token is exchanged for outlives it.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::login::{auth_file, await_audit, htpasswd_of};
use support::oidc::Provider;
use support::{Layout, Server, skopeo};

#[cfg_attr(
    not(all(has_oidc_provider, has_skopeo, has_curl)),
    ignore = "skipped: node with oauth2-mock-server, skopeo and curl are needed (npm ci --prefix examples/registry/tests/oidc; apt-get install skopeo curl)"
)]
#[test]
fn skopeo_pushes_with_a_provider_token_confined_by_its_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let provider = Provider::start();
    let stranger = Provider::start();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    let audit = tmp.path().join("audit.jsonl");
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"htpasswd = "{users}"

[token]
issue = true

[[oidc]]
issuer = "{issuer}"
audience = "registry"
username_claim = "sub"
groups_claim = "groups"

[audit]
path = "{audit}"

# Every client here is 127.0.0.1: the refusals below must not lock it out (tests/login.rs
# covers throttling).
[throttle]
max_failures = 100

[groups]
admins = ["alice"]

[[access]]
repositories = ["team/{{claim:project}}/*"]
users = ["*"]
actions = ["pull", "push"]

[[access]]
repositories = ["{{user}}/*"]
users = ["*"]
actions = ["*"]

[[access]]
repositories = ["shared/*"]
groups = ["oidc:readers"]
actions = ["pull"]

[[access]]
repositories = ["*"]
groups = ["admins"]
actions = ["*"]
catalog = true
"#,
            users = users.display(),
            issuer = provider.issuer,
            audit = audit.display(),
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let host = server.addr.clone();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(61, 2, 30_000, "amd64");
    layout.tag("app", image);
    let src = format!("oci:{}:app", layout.dir.display());
    let auth = auth_file(tmp.path(), "ci");
    let push = |creds: &str, repo: &str| {
        skopeo(
            &auth,
            &[
                "copy",
                "-q",
                "--dest-tls-verify=false",
                "--dest-creds",
                creds,
                &src,
                &format!("docker://{host}/{repo}:v1"),
            ],
        )
    };

    let job = json!({"sub": "ci-job-7", "aud": "registry", "project": "proj"});
    let token = provider.token(job.clone(), false);
    push(&format!("oidc:{token}"), "team/proj/app").unwrap();
    let elsewhere = push(&format!("oidc:{token}"), "team/other/app").unwrap_err();
    assert!(
        elsewhere.contains("denied")
            || elsewhere.contains("403")
            || elsewhere.contains("unauthorized"),
        "{elsewhere}"
    );

    let expired = provider.token(job.clone(), true);
    let refused = push(&format!("oidc:{expired}"), "team/proj/app").unwrap_err();
    assert!(
        refused.to_lowercase().contains("unauthorized") || refused.contains("401"),
        "{refused}"
    );
    let other_audience = provider.token(
        json!({"sub": "ci-job-7", "aud": "somebody-else", "project": "proj"}),
        false,
    );
    assert!(push(&format!("oidc:{other_audience}"), "team/proj/app").is_err());
    let unknown_issuer = stranger.token(job, false);
    assert!(push(&format!("oidc:{unknown_issuer}"), "team/proj/app").is_err());

    // People with passwords log in beside the tokens; a groups claim grants pull.
    push("alice:alice-pw", "shared/app").unwrap();
    let reader = provider.token(
        json!({"sub": "reader-3", "aud": "registry", "groups": ["readers"]}),
        false,
    );
    let shared = format!("docker://{host}/shared/app:v1");
    skopeo(
        &auth,
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("oidc:{reader}"),
            &shared,
        ],
    )
    .unwrap();
    assert!(
        push(&format!("oidc:{reader}"), "shared/app").is_err(),
        "a reader pushed"
    );

    // A claim of several components (or `..`) substitutes nothing: no reaching into team/x/*.
    let sneaky = provider.token(
        json!({"sub": "ci-job-8", "aud": "registry", "project": "other/app"}),
        false,
    );
    assert!(push(&format!("oidc:{sneaky}"), "team/other/app/x").is_err());

    // The provider's alice is not the htpasswd admin alice: not her rights, not her group, not
    // her namespace; nor is a provider group named like the configuration's.
    let impostor = provider.token(
        json!({"sub": "alice", "aud": "registry", "groups": ["admins"]}),
        false,
    );
    for repo in ["shared/app", "alice/app", "anything/app"] {
        assert!(
            push(&format!("oidc:{impostor}"), repo).is_err(),
            "a provider's alice pushed to {repo}"
        );
    }
    let catalog = curl_status(&[
        "-u",
        &format!("oidc:{impostor}"),
        &format!("http://{host}/v2/_catalog"),
    ]);
    assert_eq!(catalog, 403, "a provider's alice listed the catalog");
    let evil = provider.token(json!({"sub": "bob/evil", "aud": "registry"}), false);
    assert!(push(&format!("oidc:{evil}"), "bob/evil/app").is_err());

    // A provider token exchanged at /token (offline) gets no refresh token and nothing that
    // outlives it.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let short = provider.token(
        json!({"sub": "ci-job-9", "aud": "registry", "project": "proj", "exp": soon}),
        false,
    );
    let out = std::process::Command::new("curl")
        .args(["-sS", "-f", "-u", &format!("oidc:{short}")])
        .arg(format!(
            "http://{host}/token?service=registry&offline_token=true&scope=repository:team/proj/app:pull"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(answer.get("refresh_token").is_none(), "{answer}");
    assert!(answer["expires_in"].as_u64().unwrap() <= 60, "{answer}");
    let claims = jwt_claims(answer["token"].as_str().unwrap());
    assert!(claims["exp"].as_u64().unwrap() <= soon, "{claims}");
    assert_eq!(claims["sub"], "oidc:ci-job-9");

    let text = await_audit(&audit, "the token logins", |t| {
        t.lines().any(|l| {
            l.contains("\"kind\":\"login\"") && l.contains("\"identity\":\"oidc:ci-job-7\"")
        }) && t.lines().any(|l| l.contains("\"kind\":\"login_failed\""))
            && t.lines().any(|l| {
                l.contains("\"kind\":\"write\"") && l.contains("\"identity\":\"oidc:ci-job-7\"")
            })
    });
    assert!(!text.contains(&token), "the audit log holds a token");
}

/// The status curl gets for `args`.
fn curl_status(args: &[&str]) -> u16 {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

/// The claims of a JWT, unverified.
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

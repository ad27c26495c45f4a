//! Logins through the real binary: Basic login beside anonymous pulls (with skopeo), failed
//! logins throttled per address and user then released, and the audit trail of logins, writes
//! and refusals.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use support::login::{auth_file, htpasswd_of};
use support::wait::{until, until_blocking};
use support::{Api, Layout, Server, TestImage, noise, skopeo};

/// A config of two users (alice may do everything everywhere, bob only in `bob/*`), anonymous
/// pulls of `public/*`, and `extra`.
fn config(dir: &Path, extra: &str) -> String {
    let users = htpasswd_of(dir, &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            r#"htpasswd = "{}"
{extra}
[[access]]
repositories = ["public/*"]
users = ["anonymous"]
actions = ["pull"]
[[access]]
repositories = ["*"]
users = ["alice"]
actions = ["*"]
[[access]]
repositories = ["bob/*"]
users = ["bob"]
actions = ["*"]
"#,
            users.display()
        ),
    )
    .unwrap();
    file.to_str().unwrap().to_owned()
}

#[cfg_attr(
    not(has_skopeo),
    ignore = "skipped: skopeo is not installed (apt-get install skopeo)"
)]
#[test]
fn basic_login_works_beside_anonymous_pulls() {
    let tmp = tempfile::tempdir().unwrap();
    let file = config(tmp.path(), "");
    let server = Server::start(&tmp.path().join("data"), &["--config", &file]);
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(31, 2, 50_000, "amd64");
    layout.tag("app", image);
    let src = format!("oci:{}:app", layout.dir.display());
    let dest = format!("docker://{}/public/app:v1", server.addr);
    let alice = auth_file(tmp.path(), "alice");
    let anon = auth_file(tmp.path(), "anon");

    // Without credentials a push is refused; with them it goes, though anonymous may pull here.
    let refused = skopeo(
        &anon,
        &["copy", "-q", "--dest-tls-verify=false", &src, &dest],
    );
    assert!(refused.is_err(), "an anonymous push went through");
    skopeo(
        &alice,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:alice-pw",
            &src,
            &dest,
        ],
    )
    .unwrap();
    // Anonymous pulls still work where the rules allow them, and only there.
    skopeo(&anon, &["inspect", "--tls-verify=false", &dest]).unwrap();
    let out = tmp.path().join("pulled");
    skopeo(
        &anon,
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:app", out.display()),
        ],
    )
    .unwrap();
    assert!(support::verify_layout_blobs(&out) >= 3);
    let private = format!("docker://{}/alice/app:v1", server.addr);
    skopeo(
        &alice,
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:alice-pw",
            &src,
            &private,
        ],
    )
    .unwrap();
    assert!(skopeo(&anon, &["inspect", "--tls-verify=false", &private]).is_err());
}

/// A client whose connections come from `ip` (any 127.x address reaches the server).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

async fn login(
    client: &reqwest::Client,
    addr: &str,
    user: &str,
    password: &str,
) -> (u16, Option<String>) {
    let r = client
        .get(format!("http://{addr}/v2/"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry)
}

/// The audit file's records, parsed.
fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until the audit file holds a record `matching`, or fails after ten seconds.
fn await_record(path: &Path, what: &str, matching: impl Fn(&serde_json::Value) -> bool) {
    let record = format!("an audit record of {what}");
    until_blocking(&record, Duration::from_secs(10), || {
        audit_lines(path).iter().any(&matching)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_then_released_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.jsonl");
    let file = config(
        tmp.path(),
        &format!(
            "[throttle]\nmax_failures = 3\ninitial_lockout_secs = 10\n[audit]\npath = \"{}\"\n[[immutable]]\nrepositories = [\"bob/*\"]\ntags = [\"^v\"]\n",
            audit.display()
        ),
    );
    let server = Server::start(&tmp.path().join("data"), &["--config", &file]);
    let addr = server.addr.clone();
    let attacker = client_from(Ipv4Addr::new(127, 0, 0, 1));
    let other = client_from(Ipv4Addr::new(127, 0, 0, 2));

    // A client retrying one stale password (containerd tries five times) is one failure.
    for _ in 0..10 {
        assert_eq!(login(&attacker, &addr, "alice", "stale").await.0, 401);
    }
    for i in 1..3 {
        let guess = format!("guess-{i}");
        assert_eq!(login(&attacker, &addr, "alice", &guess).await.0, 401);
    }
    let (status, retry) = login(&attacker, &addr, "alice", "guess-3").await;
    assert_eq!(status, 429);
    // The lockout's remainder, in whole seconds (a busy machine may have spent some already).
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    // Locked: the right password from that address, and alice from anywhere under any
    // spelling, wait too…
    assert_eq!(login(&attacker, &addr, "alice", "alice-pw").await.0, 429);
    assert_eq!(login(&other, &addr, "alice", "alice-pw").await.0, 429);
    assert_eq!(login(&other, &addr, " ALICE", "alice-pw").await.0, 429);
    // …but another user from another address is not refused.
    assert_eq!(login(&other, &addr, "bob", "bob-pw").await.0, 200);
    // Once the lockout has passed, the right password works again.
    until(
        "the end of the lockout",
        Duration::from_secs(60),
        async || match login(&attacker, &addr, "alice", "alice-pw").await.0 {
            200 => true,
            429 => false,
            s => panic!("answered {s} while the lockout ran out"),
        },
    )
    .await;

    // A good login of one's own account does not clear one's address: no endless spraying.
    let sprayer = client_from(Ipv4Addr::new(127, 0, 0, 3));
    for (i, user) in ["carol", "dave"].iter().enumerate() {
        assert_eq!(
            login(&sprayer, &addr, user, &format!("spray-{i}")).await.0,
            401
        );
    }
    assert_eq!(login(&sprayer, &addr, "bob", "bob-pw").await.0, 200);
    assert_eq!(login(&sprayer, &addr, "erin", "spray-2").await.0, 401);
    assert_eq!(login(&sprayer, &addr, "frank", "spray-3").await.0, 429);

    // Writes and refusals.
    let bob = Api {
        http: reqwest::Client::builder()
            .default_headers({
                let mut h = reqwest::header::HeaderMap::new();
                // base64 of bob:bob-pw
                h.insert("authorization", "Basic Ym9iOmJvYi1wdw==".parse().unwrap());
                h
            })
            .build()
            .unwrap(),
        base: format!("http://{addr}"),
    };
    let image = TestImage::new(5, vec![noise(5, 2000)]);
    bob.push_image("bob/app", "v1", &image).await.unwrap();
    let denied = bob.push_image("alice/app", "v1", &image).await.unwrap_err();
    assert!(denied.contains("403"), "{denied}");
    let other_image = TestImage::new(6, vec![noise(6, 2000)]);
    let immutable = bob
        .push_image("bob/app", "v1", &other_image)
        .await
        .unwrap_err();
    assert!(immutable.contains("immutable"), "{immutable}");

    let kind = |r: &serde_json::Value, k: &str| r["kind"] == k;
    await_record(&audit, "the failed logins", |r| {
        kind(r, "login_failed") && r["identity"] == "alice" && r["client"] == "127.0.0.1"
    });
    await_record(&audit, "the throttled attempt", |r| {
        kind(r, "throttled") && r["status"] == 429
    });
    await_record(&audit, "bob's login", |r| {
        kind(r, "login") && r["identity"] == "bob" && r["client"] == "127.0.0.2"
    });
    let manifest = image.digest().to_string();
    await_record(&audit, "the manifest push", |r| {
        kind(r, "write")
            && r["repository"] == "bob/app"
            && r["reference"] == "v1"
            && r["digest"] == manifest.as_str()
            && r["request_id"].as_str().is_some_and(|id| !id.is_empty())
    });
    await_record(&audit, "the push bob may not make", |r| {
        kind(r, "refused") && r["repository"] == "alice/app" && r["status"] == 403
    });
    await_record(&audit, "the admission refusal", |r| {
        kind(r, "refused")
            && r["status"] == 403
            && r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("immutable"))
    });
    let failed = audit_lines(&audit)
        .iter()
        .filter(|r| kind(r, "login_failed"))
        .count();
    assert_eq!(failed, 15, "attempts refused unchecked are not failures");
    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in ["guess", "alice-pw", "bob-pw", "Ym9iOmJvYi1wdw"] {
        assert!(!text.contains(secret), "the audit log holds {secret:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_registry_tokens_are_not_failed_logins() {
    let tmp = tempfile::tempdir().unwrap();
    let file = config(
        tmp.path(),
        "[token]\nissue = true\n[throttle]\nmax_failures = 2\ninitial_lockout_secs = 60\n",
    );
    let server = Server::start(&tmp.path().join("data"), &["--config", &file]);
    let client = reqwest::Client::new();
    // What a client holding an expired token sends, many layers at once.
    for _ in 0..10 {
        let r = client
            .get(format!("http://{}/v2/alice/app/tags/list", server.addr))
            .bearer_auth("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c3RhbGU")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    // Then fetches a fresh one: not throttled.
    let r = client
        .get(format!(
            "http://{}/token?service=registry&scope=repository:alice/app:pull",
            server.addr
        ))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Wrong passwords still count, at /token too.
    for i in 0..2 {
        let r = client
            .get(format!("http://{}/token?service=registry", server.addr))
            .basic_auth("alice", Some(format!("guess-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let r = client
        .get(format!("http://{}/token?service=registry", server.addr))
        .basic_auth("alice", Some("guess-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
}

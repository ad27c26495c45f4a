//! What the pull-through cache trusts an upstream with, through the real binary and a hostile
//! upstream on loopback: redirects into the network, wrong bytes, a `HEAD` that claims anything,
//! credentials in its URL, a token realm on plain HTTP elsewhere, absurd token lifetimes.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_core::Digest;
use support::{Api, Server, TestImage, noise};

/// A request a test server received: its path and `Authorization` header.
type Request = (String, Option<String>);

/// Requests a test server received.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

impl Seen {
    fn record(&self, path: &str, headers: &HeaderMap) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.0.lock().unwrap().push((path.to_owned(), auth));
    }

    fn all(&self) -> Vec<Request> {
        self.0.lock().unwrap().clone()
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

/// A server that records every request and answers `body` to each: an internal service behind
/// the mirror, a CDN, or a token realm.
async fn recorder(body: &'static str) -> (String, Seen) {
    let seen = Seen::default();
    let app = axum::Router::new()
        .fallback(
            move |State(seen): State<Seen>, uri: axum::http::Uri, headers: HeaderMap| async move {
                seen.record(uri.path(), &headers);
                body
            },
        )
        .with_state(seen.clone());
    (serve(app).await, seen)
}

/// The real bytes of the blob the hostile upstream serves, and its digest.
fn real_blob() -> (Vec<u8>, Digest) {
    let bytes = noise(42, 70_000);
    let d = Digest::of(&bytes);
    (bytes, d)
}

#[derive(Clone)]
struct Hostile {
    /// Where `/v2/redirect/…` sends the mirror.
    redirect_to: String,
    /// Where `/v2/cdn/…` sends the mirror, after Basic authentication.
    cdn: String,
}

/// The hostile upstream.
async fn hostile_upstream(redirect_to: String, cdn: String) -> String {
    let app = axum::Router::new()
        .route("/v2/", axum::routing::get(|| async { "{}" }))
        // Every blob exists, says HEAD; GET answers 404.
        .route(
            "/v2/{*rest}",
            axum::routing::head(|| async { [("content-length", "70000")] }).get(hostile_get),
        )
        .with_state(Hostile { redirect_to, cdn });
    format!("http://{}", serve(app).await)
}

async fn hostile_get(
    State(h): State<Hostile>,
    UrlPath(rest): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let (real, d) = real_blob();
    let blob = format!("blobs/{d}");
    match rest.split_once('/') {
        Some(("redirect", path)) if path == blob => {
            (StatusCode::FOUND, [("location", h.redirect_to.clone())]).into_response()
        }
        // The right length, the wrong bytes.
        Some(("wrong", path)) if path == blob => {
            let mut fake = real.clone();
            fake[real.len() - 1] ^= 0xff;
            fake.into_response()
        }
        Some(("cdn", path)) if path == blob => {
            if headers.get("authorization").is_none() {
                return (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "Basic realm=\"hostile\"")],
                )
                    .into_response();
            }
            let target = format!("{}/{d}", h.cdn);
            (StatusCode::TEMPORARY_REDIRECT, [("location", target)]).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A mirror of `upstream` under the prefix `hub`, with more keys for `[mirror]` and for the
/// upstream's table.
fn mirror_of(dir: &Path, upstream: &str, mirror_keys: &str, upstream_keys: &str) -> Server {
    let config = dir.join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            "[mirror]\n{mirror_keys}\n[[mirror.upstreams]]\nprefix = \"hub\"\nurl = \"{upstream}\"\n{upstream_keys}"
        ),
    )
    .unwrap();
    Server::start(&dir.join("mirror"), &["--config", config.to_str().unwrap()])
}

#[tokio::test]
async fn redirects_into_the_network_are_not_followed() {
    let (internal, seen) = recorder("SECRET-CREDENTIALS").await;
    let port = internal.rsplit(':').next().unwrap();
    let target = format!("http://localhost:{port}/latest/meta-data/iam");
    let upstream = hostile_upstream(target, String::new()).await;
    let tmp = tempfile::tempdir().unwrap();
    let mirror = mirror_of(tmp.path(), &upstream, "", "");
    let (_, d) = real_blob();
    let (status, body) = Api::new(&mirror.addr)
        .answer(&format!("/v2/hub/redirect/blobs/{d}"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("SECRET"), "{body}");
    assert!(
        seen.all().is_empty(),
        "the mirror followed the redirect: {:?}",
        seen.all()
    );
}

#[tokio::test]
async fn wrong_bytes_never_reach_a_client_whole() {
    let upstream = hostile_upstream(String::new(), String::new()).await;
    let tmp = tempfile::tempdir().unwrap();
    let mirror = mirror_of(tmp.path(), &upstream, "", "");
    let (real, d) = real_blob();
    let api = Api::new(&mirror.addr);
    for _ in 0..3 {
        let url = format!("{}/v2/hub/wrong/blobs/{d}", api.base);
        let res = match api.http.get(url).send().await {
            Ok(res) => res,
            Err(_) => continue,
        };
        if res.status() != 200 {
            assert_eq!(res.status(), 502);
            continue;
        }
        if let Ok(got) = res.bytes().await {
            panic!(
                "a whole answer of {} bytes (the blob has {}) that are not the blob",
                got.len(),
                real.len()
            );
        }
    }
    let stored = tmp
        .path()
        .join(format!("mirror/blobs/sha256/{}/{}", &d.hex()[..2], d.hex()));
    assert!(!stored.exists(), "the wrong bytes were stored");
}

#[tokio::test]
async fn a_head_upstream_does_not_expose_local_private_blobs() {
    let upstream = hostile_upstream(String::new(), String::new()).await;
    let tmp = tempfile::tempdir().unwrap();
    let users = tmp.path().join("htpasswd");
    std::fs::write(
        &users,
        format!("alice:{}\n", bcrypt::hash("alicepass", 5).unwrap()),
    )
    .unwrap();
    // Users may do anything in their own namespace; anyone may pull the mirror.
    let config = tmp.path().join("mirror.toml");
    std::fs::write(
        &config,
        format!(
            "htpasswd = \"{}\"\n\
             [[mirror.upstreams]]\nprefix = \"hub\"\nurl = \"{upstream}\"\n\
             [[access]]\nrepositories = [\"{{user}}/*\"]\nusers = [\"*\"]\nactions = [\"*\"]\n\
             [[access]]\nrepositories = [\"hub/*\"]\nusers = [\"anonymous\"]\nactions = [\"pull\"]\n",
            users.display()
        ),
    )
    .unwrap();
    let mirror = Server::start(
        &tmp.path().join("mirror"),
        &["--config", config.to_str().unwrap()],
    );
    // Alice's private layer.
    let private = noise(7, 70_000);
    let d = Digest::of(&private);
    let http = reqwest::Client::new();
    let pushed = http
        .post(format!(
            "http://{}/v2/alice/private/blobs/uploads/?digest={d}",
            mirror.addr
        ))
        .basic_auth("alice", Some("alicepass"))
        .body(private.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 201);
    // Anonymous may pull the mirror; the upstream answers HEAD 200 for any digest.
    let anon = Api::new(&mirror.addr);
    for path in [
        format!("/v2/hub/anything/blobs/{d}"),
        format!("/v2/alice/private/blobs/{d}"),
    ] {
        let res = anon
            .http
            .get(format!("{}{path}", anon.base))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.bytes().await.unwrap_or_default();
        assert_ne!(status, 200, "{path}");
        assert!(body != private, "{path} served alice's private bytes");
    }
}

#[tokio::test]
async fn credentials_in_the_upstream_url_are_used_and_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let users = tmp.path().join("htpasswd");
    std::fs::write(
        &users,
        format!("puller:{}\n", bcrypt::hash("s3cret-pw", 5).unwrap()),
    )
    .unwrap();
    let config = tmp.path().join("upstream.toml");
    std::fs::write(
        &config,
        format!(
            "htpasswd = \"{}\"\n[token]\nissue = true\n",
            users.display()
        ),
    )
    .unwrap();
    let upstream = Server::start(
        &tmp.path().join("upstream"),
        &["--config", config.to_str().unwrap()],
    );
    let image = TestImage::new(5, vec![noise(5, 10_000)]);
    let push = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}", upstream.addr),
    };
    // Push through a token the upstream issues to the puller (every user may do everything).
    let token: serde_json::Value = push
        .http
        .get(format!(
            "{}/token?scope=repository:team/app:pull,push",
            push.base
        ))
        .basic_auth("puller", Some("s3cret-pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let authed = Api {
        http: reqwest::Client::builder()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", token["token"].as_str().unwrap())
                        .parse()
                        .unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
        base: push.base.clone(),
    };
    authed.push_image("team/app", "v1", &image).await.unwrap();
    let with_creds = format!("http://puller:s3cret-pw@{}", upstream.addr);
    let mirror = Server::start_with(
        &format!("fs:{}", tmp.path().join("mirror").display()),
        &["--mirror", &with_creds],
        &[],
    );
    let api = Api::new(&mirror.addr);
    assert_eq!(
        api.pull_verified("team/app", "v1").await.unwrap(),
        image.digest()
    );
    // An upstream that cannot be reached names itself, without the password.
    let dead = Server::start_with(
        &format!("fs:{}", tmp.path().join("dead").display()),
        &["--mirror", "http://puller:s3cret-pw@127.0.0.1:9"],
        &[],
    );
    let (status, body) = Api::new(&dead.addr)
        .answer("/v2/team/app/manifests/v1")
        .await;
    assert_eq!(status, 502);
    assert!(body.contains("127.0.0.1:9"), "{body}");
    // Log lines are written in batches: wait for the one about the failed fetch.
    support::wait::until(
        "a log line about the failed fetch",
        std::time::Duration::from_secs(10),
        async || {
            dead.log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("127.0.0.1:9"))
        },
    )
    .await;
    for text in std::iter::once(body).chain(dead.log.lock().unwrap().iter().cloned()) {
        assert!(!text.contains("s3cret"), "a password shown: {text}");
    }
}

/// An upstream whose token realm is `realm`.
async fn upstream_with_realm(realm: String) -> String {
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let realm = realm.clone();
        async move {
            let bearer = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer "));
            if bearer {
                return StatusCode::NOT_FOUND.into_response();
            }
            let challenge = format!("Bearer realm=\"{realm}\",service=\"hostile\"");
            (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)]).into_response()
        }
    });
    format!("http://{}", serve(app).await)
}

#[tokio::test]
async fn credentials_never_go_to_a_plain_http_realm_elsewhere() {
    let (realm, seen) = recorder(r#"{"token":"anonymous-token"}"#).await;
    let upstream = upstream_with_realm(format!("http://{realm}/token")).await;
    let tmp = tempfile::tempdir().unwrap();
    let mirror = mirror_of(
        tmp.path(),
        &upstream,
        "",
        "username = \"me\"\npassword = \"realm-secret\"\n",
    );
    let (status, _) = Api::new(&mirror.addr)
        .answer("/v2/hub/app/manifests/v1")
        .await;
    assert_eq!(status, 404, "the upstream's 404 after the token");
    let seen = seen.all();
    assert!(!seen.is_empty(), "the realm was not asked at all");
    assert!(
        seen.iter().all(|(_, auth)| auth.is_none()),
        "credentials sent to a plain-HTTP realm on another origin: {seen:?}"
    );
}

#[tokio::test]
async fn an_absurd_token_lifetime_is_clamped() {
    let (realm, _) = recorder(r#"{"token":"t","expires_in":18446744073709551615}"#).await;
    let upstream = upstream_with_realm(format!("http://{realm}/token")).await;
    let tmp = tempfile::tempdir().unwrap();
    let mirror = mirror_of(tmp.path(), &upstream, "", "");
    let api = Api::new(&mirror.addr);
    for _ in 0..2 {
        let (status, body) = api.answer("/v2/hub/app/manifests/v1").await;
        assert_eq!(status, 404, "{body}");
    }
}

#[tokio::test]
async fn a_redirect_to_another_origin_carries_no_credentials() {
    let (real, d) = real_blob();
    let cdn_seen = Seen::default();
    let cdn = {
        let app = axum::Router::new()
            .fallback(
                move |State(seen): State<Seen>, uri: axum::http::Uri, headers: HeaderMap| {
                    let real = real.clone();
                    async move {
                        seen.record(uri.path(), &headers);
                        real
                    }
                },
            )
            .with_state(cdn_seen.clone());
        format!("http://{}", serve(app).await)
    };
    let upstream = hostile_upstream(String::new(), cdn).await;
    let tmp = tempfile::tempdir().unwrap();
    let mirror = mirror_of(
        tmp.path(),
        &upstream,
        "redirects = \"any\"",
        "username = \"me\"\npassword = \"cdn-secret\"\n",
    );
    let api = Api::new(&mirror.addr);
    let got = api
        .get(&format!("/v2/hub/cdn/blobs/{d}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(Digest::of(&got), d);
    let seen = cdn_seen.all();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1, None, "credentials went to another origin");
}

//! The admin paths through HTTP: tag history, restore and usage as JSON, each guarded by the
//! access control like the API (history `pull`, a repository's usage `pull` by an identified
//! caller, restore `push`, the store's usage catalog access and pull everywhere), with OCI
//! errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use base64::Engine;
use common::*;
use registry_core::access::{AccessControl, Action, AuthError, Credentials, Identity, Resource};
use registry_http::HttpOptions;
use registry_http::auth::policy::{AccessRules, Rule};

/// Whoever names themselves is that user (the tests are about policy, not passwords).
struct Named(AccessRules);

#[async_trait::async_trait]
impl AccessControl for Named {
    async fn identify(&self, c: &Credentials) -> Result<Option<Identity>, AuthError> {
        match c {
            Credentials::Basic { user, .. } => Ok(Some(Identity::user(user.clone()))),
            _ => Ok(None),
        }
    }

    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool {
        registry_http::auth::policy::permits(Some(&self.0), who, resource, actions)
    }

    fn challenge(&self, who: Option<&Identity>, _: Resource<'_>, _: &[Action]) -> Option<String> {
        who.is_none().then(|| "Basic realm=\"test\"".to_owned())
    }
}

fn rule(repos: &[&str], users: &[&str], actions: &[&str], catalog: bool) -> Rule {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
    Rule {
        repositories: v(repos),
        users: v(users),
        actions: v(actions),
        catalog,
        ..Default::default()
    }
}

fn app_with(read_only: bool) -> (Router, Registry) {
    let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
    let rules = AccessRules::new(
        vec![
            rule(&["{user}/*"], &["*"], &["*"], false),
            rule(&["alice/*"], &["carol", "dave"], &["pull"], false),
            rule(&["*"], &["dave"], &[], true),
            rule(&["*"], &["erin"], &["pull"], true),
            rule(&["library/*"], &["anonymous"], &["pull"], false),
        ],
        HashMap::new(),
    );
    let options = HttpOptions {
        access: Some(Arc::new(Named(rules))),
        read_only,
        ..HttpOptions::default()
    };
    (
        registry_http::router_with(registry.clone(), options),
        registry,
    )
}

fn basic(user: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
    format!("Basic {token}")
}

async fn send(app: &Router, method: Method, uri: &str, user: Option<&str>) -> Res {
    let auth = user.map(basic);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    call(app, method, uri)
        .headers(&headers)
        .send(Body::empty())
        .await
}

/// `user` pushes an image of one layer under `repo:tag`; returns the manifest's digest.
async fn push_as(app: &Router, user: &str, repo: &str, tag: &str, seed: &[u8]) -> Digest {
    let auth = basic(user);
    let headers = [("authorization", auth.as_str())];
    let mut digests = Vec::new();
    for data in [seed.to_vec(), [seed, b"-layer"].concat()] {
        let digest = Digest::of(&data);
        let res = call(
            app,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .headers(&headers)
        .send(data)
        .await;
        assert_eq!(res.status, StatusCode::CREATED);
        digests.push(digest);
    }
    let body = manifest((&digests[0], seed.len()), &[(&digests[1], seed.len() + 6)]);
    let res = call(app, Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
        .headers(&[
            ("authorization", auth.as_str()),
            ("content-type", OCI_MANIFEST),
        ])
        .send(body.clone())
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body_text());
    Digest::of(body.as_bytes())
}

#[tokio::test]
async fn history_and_restore_answer_json_to_those_the_rules_let_in() {
    let (app, _) = app_with(false);
    let first = push_as(&app, "alice", "alice/app", "v1", b"one").await;
    let second = push_as(&app, "alice", "alice/app", "v1", b"two").await;
    let res = send(
        &app,
        Method::DELETE,
        "/v2/alice/app/manifests/v1",
        Some("alice"),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);

    let history = "/admin/v1/history/alice/app?tag=v1";
    let res = send(&app, Method::GET, history, None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.code(), "UNAUTHORIZED");
    let res = send(&app, Method::GET, history, Some("bob")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.code(), "DENIED");
    let res = send(&app, Method::GET, history, Some("carol")).await;
    assert_eq!(res.status, StatusCode::OK);
    let changes = res.json()["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0]["to"], first.to_string().as_str());
    assert_eq!(changes[1]["from"], first.to_string().as_str());
    assert_eq!(changes[2]["to"], serde_json::Value::Null);
    assert_eq!(changes[2]["identity"], "alice");
    assert!(changes[2]["request_id"].is_string());
    // The whole repository's history, every tag.
    let res = send(
        &app,
        Method::GET,
        "/admin/v1/history/alice/app",
        Some("alice"),
    )
    .await;
    assert_eq!(res.json()["changes"].as_array().unwrap().len(), 3);

    let restore = "/admin/v1/restore/alice/app?tag=v1";
    let res = send(&app, Method::POST, restore, Some("carol")).await;
    assert_eq!(
        res.status,
        StatusCode::FORBIDDEN,
        "pull alone may not restore"
    );
    let res = send(
        &app,
        Method::GET,
        "/v2/alice/app/manifests/v1",
        Some("alice"),
    )
    .await;
    assert_eq!(
        res.status,
        StatusCode::NOT_FOUND,
        "a refused restore changes nothing"
    );
    let res = send(&app, Method::POST, restore, Some("alice")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body_text());
    assert_eq!(res.json()["digest"], second.to_string().as_str());
    let res = send(
        &app,
        Method::GET,
        "/v2/alice/app/manifests/v1",
        Some("alice"),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("docker-content-digest"), second.to_string());
    // History records it as a restore, with who made it.
    let res = send(
        &app,
        Method::GET,
        "/admin/v1/history/alice/app?tag=v1",
        Some("alice"),
    )
    .await;
    let changes = res.json()["changes"].as_array().unwrap().clone();
    let last = changes.last().unwrap();
    assert_eq!(last["restored"], true, "{last}");
    assert_eq!(last["to"], second.to_string().as_str(), "{last}");
    assert_eq!(last["identity"], "alice", "{last}");

    let stranger = Digest::of(b"stranger");
    let res = send(
        &app,
        Method::POST,
        &format!("{restore}&to={stranger}"),
        Some("alice"),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.code(), "MANIFEST_UNKNOWN");
    let res = send(
        &app,
        Method::POST,
        "/admin/v1/restore/alice/app?tag=nope",
        Some("alice"),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.code(), "MANIFEST_UNKNOWN");
    let res = send(
        &app,
        Method::POST,
        "/admin/v1/restore/alice/app",
        Some("alice"),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let res = send(
        &app,
        Method::GET,
        "/admin/v1/history/Alice/App",
        Some("alice"),
    )
    .await;
    assert_eq!(res.code(), "NAME_INVALID");
    let res = send(&app, Method::GET, "/admin/v1/nothing-here", Some("alice")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.code(), "UNSUPPORTED");
}

#[tokio::test]
async fn a_read_only_registry_refuses_restores() {
    let (app, _) = app_with(true);
    let res = send(
        &app,
        Method::POST,
        "/admin/v1/restore/alice/app?tag=v1",
        Some("alice"),
    )
    .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.code(), "UNSUPPORTED");
}

#[tokio::test]
async fn usage_shows_only_what_the_caller_may_see() {
    let (app, _) = app_with(false);
    push_as(&app, "alice", "alice/app", "v1", b"a").await;
    push_as(&app, "bob", "bob/secret", "v1", b"b").await;
    push_as(&app, "library", "library/base", "v1", b"a").await;

    let res = send(
        &app,
        Method::GET,
        "/admin/v1/usage/alice/app",
        Some("carol"),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let report = res.json();
    let repo = &report["repositories"][0];
    assert_eq!(repo["name"], "alice/app");
    assert!(repo["referenced_bytes"].as_u64().unwrap() > 0);
    // Read from that repository alone: nothing about what others hold (which would tell carol
    // that some repository she cannot see holds the same layer).
    for unknown in ["shared_bytes", "exclusive_bytes"] {
        assert!(repo.get(unknown).is_none(), "{unknown}: {repo}");
    }
    assert!(repo["tags"][0].get("frees_bytes").is_none(), "{repo}");
    assert!(
        report.get("store").is_none(),
        "one repository's report has no store totals"
    );
    let res = send(
        &app,
        Method::GET,
        "/admin/v1/usage/bob/secret",
        Some("carol"),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // Anonymous callers may pull library/*, but its usage needs a login (or a rule saying so).
    let res = send(&app, Method::GET, "/admin/v1/usage/library/base", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = send(&app, Method::GET, "/v2/library/base/tags/list", None).await;
    assert_eq!(res.status, StatusCode::OK);

    // The store as a whole: catalog access alone (dave) is not enough.
    for who in ["carol", "dave"] {
        let res = send(&app, Method::GET, "/admin/v1/usage", Some(who)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{who}");
    }
    let res = send(&app, Method::GET, "/admin/v1/usage", Some("erin")).await;
    assert_eq!(res.status, StatusCode::OK);
    let report = res.json();
    let names: Vec<String> = report["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["alice/app", "bob/secret", "library/base"]);
    assert!(report["store"]["stored_bytes"].as_u64().unwrap() > 0);
    assert!(report["repositories"][0]["shared_bytes"].as_u64().is_some());
    let res = send(
        &app,
        Method::GET,
        "/admin/v1/usage/alice/none",
        Some("alice"),
    )
    .await;
    assert_eq!(res.code(), "NAME_UNKNOWN");
}

//! The web UI through HTTP (the browser flow is in the server's tests/ui.rs): session cookies
//! and their attributes, forms refused without the session's token, pages hiding what the
//! visitor may not pull, logins checked like the API's.
#![cfg(feature = "ui")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::*;
use registry_http::auth::policy::{AccessRules, Rule};
use registry_http::ui::UiOptions;

fn rule(repos: &[&str], users: &[&str], actions: &[&str]) -> Rule {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
    Rule {
        repositories: v(repos),
        users: v(users),
        actions: v(actions),
        ..Default::default()
    }
}

/// The audit records the UI wrote.
#[derive(Default)]
struct Trail(std::sync::Mutex<Vec<registry_http::audit::AuditRecord>>);

impl registry_http::audit::AuditSink for Trail {
    fn record(&self, record: registry_http::audit::AuditRecord) {
        self.0.lock().unwrap().push(record);
    }
}

/// The API and the UI over one memory store; alice may do everything, anonymous pull `public/*`;
/// the UI's audit trail.
fn apps(secure: bool) -> (Router, Router, Arc<Trail>) {
    let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
    let hash = bcrypt::hash("alice-pw", 4).unwrap();
    let users = registry_http::Htpasswd::parse(&format!("alice:{hash}"), "registry").unwrap();
    let gate = registry_http::auth::gate::Gate::new("registry")
        .users(Arc::new(users))
        .rules(AccessRules::new(
            vec![
                rule(&["public/*"], &["anonymous"], &["pull"]),
                rule(&["*"], &["alice"], &["*"]),
            ],
            HashMap::new(),
        ));
    let access: Arc<dyn registry_http::AccessControl> = Arc::new(gate);
    let trail = Arc::new(Trail::default());
    let ui = registry_http::ui::router(
        registry.clone(),
        UiOptions {
            access: Some(access.clone()),
            secure_cookies: secure,
            audit: Some(trail.clone()),
            ..UiOptions::default()
        },
    );
    (registry_http::router(registry), ui, trail)
}

/// A request to the UI (whose pages carry no API version header, unlike `common::call`'s).
async fn ui_call(
    app: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Res {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    Res {
        status,
        headers,
        body,
    }
}

async fn page(app: &Router, path: &str, cookie: Option<&str>) -> Res {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
    ui_call(app, Method::GET, path, &headers, String::new()).await
}

/// The session cookie a response sets, as `name=value`.
fn cookie(res: &Res) -> String {
    res.header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The form token on a page.
fn csrf(res: &Res) -> String {
    let page = res.body_text();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

async fn form(app: &Router, path: &str, cookie: &str, body: &str) -> Res {
    let headers = [
        ("cookie", cookie),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    ui_call(app, Method::POST, path, &headers, body.to_owned()).await
}

#[tokio::test]
async fn sessions_cookies_and_forged_forms() {
    let (registry_app, ui, trail) = apps(false);
    let alice = "Basic YWxpY2U6YWxpY2UtcHc="; // alice:alice-pw
    // The tag private/secret:v1 through the API, as alice.
    let secret_v1 = || async {
        call(
            &registry_app,
            Method::GET,
            "/v2/private/secret/manifests/v1",
        )
        .headers(&[("authorization", alice)])
        .send(Body::empty())
        .await
    };
    // Content through the API, as alice.
    for repo in ["public/app", "private/secret"] {
        let config = b"{}";
        let digest = Digest::of(config);
        let res = call(
            &registry_app,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .headers(&[("authorization", alice)])
        .send(config.to_vec())
        .await;
        assert_eq!(res.status, StatusCode::CREATED);
        let body = manifest((&digest, config.len()), &[]);
        let res = call(
            &registry_app,
            Method::PUT,
            &format!("/v2/{repo}/manifests/v1"),
        )
        .headers(&[("authorization", alice), ("content-type", OCI_MANIFEST)])
        .send(body)
        .await;
        assert_eq!(res.status, StatusCode::CREATED);
    }

    // An anonymous visitor gets a form cookie (no session) and sees public names only.
    let home = page(&ui, "/", None).await;
    assert_eq!(home.status, StatusCode::OK);
    let set = home.header("set-cookie").to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    assert!(
        home.body_text()
            .replace("&#x2f;", "/")
            .contains("public/app")
    );
    assert!(
        !home.body_text().replace("&#x2f;", "/").contains("private"),
        "a private name shown to anonymous"
    );
    let hidden = page(&ui, "/repository?name=private/secret", None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let missing = page(&ui, "/repository?name=nothing/here", None).await;
    assert_eq!(
        hidden.body, missing.body,
        "a hidden repository must look like a missing one"
    );

    // A login form without the session's token is refused; a wrong password is a 401 page.
    let anon = cookie(&home);
    let login = page(&ui, "/login", None).await;
    let login_cookie = cookie(&login);
    let token = csrf(&login);
    let forged = form(
        &ui,
        "/login",
        &login_cookie,
        "user=alice&password=alice-pw&csrf=0000",
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = form(
        &ui,
        "/login",
        &login_cookie,
        &format!("user=alice&password=nope&csrf={token}"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = form(
        &ui,
        "/login",
        &login_cookie,
        &format!("user=alice&password=alice-pw&csrf={token}"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let session = cookie(&ok);
    assert_ne!(session, login_cookie, "a login gets a new session id");
    assert_ne!(session, anon);

    // Logged in: private names show; a delete without the token (a cross-site form) is refused.
    let home = page(&ui, "/", Some(&session)).await;
    assert!(
        home.body_text()
            .replace("&#x2f;", "/")
            .contains("private/secret")
    );
    let token = csrf(&home);
    let forged = form(&ui, "/delete", &session, "name=private/secret&tag=v1&csrf=").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let other_session = form(
        &ui,
        "/delete",
        &anon,
        &format!("name=private/secret&tag=v1&csrf={token}"),
    )
    .await;
    assert_eq!(
        other_session.status,
        StatusCode::FORBIDDEN,
        "a token from another session"
    );
    let still = secret_v1().await;
    assert_eq!(
        still.status,
        StatusCode::OK,
        "a refused form deleted something"
    );
    let done = form(
        &ui,
        "/delete",
        &session,
        &format!("name=private/secret&tag=v1&csrf={token}"),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let gone = secret_v1().await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // The history page offers the deleted digest back; restoring brings the tag back.
    let history = page(&ui, "/history?name=private/secret&tag=v1", Some(&session)).await;
    assert!(history.body_text().contains("deleted"));
    let restored = form(
        &ui,
        "/restore",
        &session,
        &format!("name=private/secret&tag=v1&csrf={token}"),
    )
    .await;
    assert_eq!(restored.status, StatusCode::SEE_OTHER);
    let back = secret_v1().await;
    assert_eq!(
        back.status,
        StatusCode::OK,
        "the restore did not bring the tag back"
    );
    // A restore the registry refuses (a digest the history lacks) is audited with the status the
    // visitor gets.
    let unknown = Digest::of(b"never pushed");
    let refused = form(
        &ui,
        "/restore",
        &session,
        &format!("name=private/secret&tag=v1&to={unknown}&csrf={token}"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let last = trail.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!((last.path.as_str(), last.status), ("/restore", 404));
    let anonymous_restore = form(
        &ui,
        "/restore",
        &anon,
        &format!(
            "name=private/secret&tag=v1&csrf={}",
            csrf(&page(&ui, "/login", Some(&anon)).await)
        ),
    )
    .await;
    assert_eq!(
        anonymous_restore.status,
        StatusCode::NOT_FOUND,
        "anonymous may not even see it"
    );

    // Logging out ends the session.
    let out = form(&ui, "/logout", &session, &format!("csrf={token}")).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = page(&ui, "/", Some(&session)).await;
    assert!(
        !after.body_text().replace("&#x2f;", "/").contains("private"),
        "the session outlived its logout"
    );
}

#[tokio::test]
async fn cookies_are_secure_under_tls() {
    let (_, ui, _) = apps(true);
    let home = page(&ui, "/", None).await;
    assert!(home.header("set-cookie").contains("Secure"));
    assert!(
        home.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn a_repository_page_pages_sorts_and_filters_every_tag() {
    let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
    let api = registry_http::router(registry.clone());
    let ui = registry_http::ui::router(registry, UiOptions::default());
    let (_, body) = push_image(&api, "many/tags", "t000").await;
    for i in 1..105 {
        let res = call(
            &api,
            Method::PUT,
            &format!("/v2/many/tags/manifests/t{i:03}"),
        )
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(body.clone())
        .await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let shown = |text: &str| -> Vec<String> {
        text.split("data-tag=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect()
    };
    // Most recent push first, fifty a page: every tag is on some page.
    let first = page(&ui, "/repository?name=many/tags", None)
        .await
        .body_text();
    assert!(first.contains("Tags 1–50 of 105."), "{first}");
    let tags = shown(&first);
    assert_eq!((tags.len(), tags[0].as_str()), (50, "t104"));
    let last = page(&ui, "/repository?name=many/tags&page=2", None)
        .await
        .body_text();
    assert_eq!(shown(&last), ["t004", "t003", "t002", "t001", "t000"]);
    // By name, and filtered.
    let by_name = page(&ui, "/repository?name=many/tags&sort=name&page=1", None)
        .await
        .body_text();
    assert_eq!(shown(&by_name)[0], "t050");
    let filtered = page(&ui, "/repository?name=many/tags&q=t10", None)
        .await
        .body_text();
    assert_eq!(shown(&filtered), ["t104", "t103", "t102", "t101", "t100"]);
    assert!(filtered.contains("5 matching (of 105)"), "{filtered}");
    // Pull commands by tag and by digest.
    let first = first.replace("&#x2f;", "/");
    assert!(
        first.contains("podman pull") && first.contains("/many/tags@sha256:"),
        "{first}"
    );
}

//! The change feed through the real binary, as a team runs it (logins, access rules, a web UI,
//! retention, webhooks, and push replication to another registry): a tag deleted in the web UI,
//! restored through the admin API and with `registry restore`, untagged by retention and its
//! manifest collected by `registry gc` each raises its webhook event, with who did it, and
//! reaches the replication target.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::images::digest_at;
use support::login::htpasswd_of;
use support::webhooks::{events, receiver};
use support::{Api, Server, TestImage, noise};

/// Waits (a minute at most) until `done` holds, saying what it waited for.
async fn until(what: &str, done: impl FnMut() -> bool) {
    support::wait::until_sync(what, Duration::from_secs(60), done).await
}

/// The value of the hidden `csrf` field of a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

/// A form body, `application/x-www-form-urlencoded` (values percent-encoded byte by byte).
fn form(fields: &[(&str, &str)]) -> String {
    let encode = |v: &str| -> String {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The `name=value` of each cookie a response sets.
fn cookies_of(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Logs `user` in through the web UI's form; the session cookie.
async fn ui_login(base: &str, user: &str, password: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let cookie = cookies_of(&page);
    let csrf = csrf_of(&page.text().await.unwrap());
    let res = http
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", csrf.as_str()),
            ("user", user),
            ("password", password),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the UI login failed");
    cookies_of(&res)
}

/// Deletes `repo:tag` through the web UI's confirmation page, as the session's user.
async fn ui_delete(base: &str, session: &str, repo: &str, tag: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{base}/delete?name={repo}&tag={tag}"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = http
        .post(format!("{base}/delete"))
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("name", repo),
            ("tag", tag),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the UI delete failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_every_origin_raise_events_and_reach_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let target = Server::start(&tmp.path().join("target"), &[]);
    let (hooks, got) = receiver().await;
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    let config = tmp.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            r#"htpasswd = "{}"
[gc]
grace_secs = 0
delete_untagged = true
history_days = 0
[[retention]]
repositories = ["team/*"]
keep_tags = ["^v"]
[[access]]
repositories = ["*"]
users = ["alice"]
actions = ["*"]
catalog = true
[[replication]]
name = "dr"
url = "http://{}"
repositories = ["team/*"]
delete = true
[[notifications.endpoints]]
name = "all"
url = "{hooks}/all"
"#,
            users.display(),
            target.addr
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let source = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let base = format!("http://{}", source.addr);
    let api = Api::with_basic(&source.addr, "alice", "alice-pw");
    let (one, two, scratch) = (
        TestImage::new(1, vec![noise(1, 3_000)]),
        TestImage::new(2, vec![noise(2, 3_000)]),
        TestImage::new(3, vec![noise(3, 3_000)]),
    );
    api.push_image("team/app", "v1", &one).await.unwrap();
    api.push_image("team/app", "v2", &two).await.unwrap();
    api.push_image("team/app", "tmp", &scratch).await.unwrap();
    let at_target = |reference: &str| digest_at(&target.addr, "team/app", reference);
    until("the pushes replicated", || {
        at_target("v1").is_some() && at_target("v2").is_some() && at_target("tmp").is_some()
    })
    .await;
    let delete_of = |tag: &'static str| {
        let got = got.clone();
        move || {
            events(&got, "all")
                .iter()
                .any(|e| e["action"] == "delete" && e["target"]["tag"] == tag)
        }
    };

    // Deleted in the web UI.
    let session = ui_login(&base, "alice", "alice-pw").await;
    ui_delete(&base, &session, "team/app", "v2").await;
    until("the UI delete replicated", || at_target("v2").is_none()).await;
    until("the UI delete's event", delete_of("v2")).await;
    let ui_event = events(&got, "all")
        .into_iter()
        .find(|e| e["action"] == "delete" && e["target"]["tag"] == "v2")
        .unwrap();
    assert_eq!(ui_event["actor"]["name"], "alice (web UI)", "{ui_event}");

    // Restored through the admin API.
    let restore = api
        .http
        .post(format!("{base}/admin/v1/restore/team/app?tag=v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(restore.status(), 200);
    let two_digest = two.digest().to_string();
    until("the admin restore replicated", || {
        at_target("v2") == Some(two_digest.clone())
    })
    .await;
    let restored_by = |actor: &'static str| {
        let got = got.clone();
        move || {
            events(&got, "all").iter().any(|e| {
                e["action"] == "push"
                    && e["target"]["tag"] == "v2"
                    && e["actor"]["name"]
                        .as_str()
                        .is_some_and(|a| a.contains(actor))
            })
        }
    };
    until("the admin restore's event", restored_by("alice")).await;

    // Deleted by tag through the API, then restored with `registry restore` beside the server.
    let delete = api
        .http
        .delete(format!("{base}/v2/team/app/manifests/v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 202);
    until("the API delete replicated", || at_target("v2").is_none()).await;
    let store = format!("fs:{}", data.display());
    let out = support::images::registry(&[
        "restore",
        "team/app:v2",
        "--storage",
        &store,
        "--config",
        config.to_str().unwrap(),
    ])
    .unwrap();
    assert!(out.contains("restored team/app:v2"), "{out}");
    until("the command's restore replicated", || {
        at_target("v2") == Some(two_digest.clone())
    })
    .await;
    until(
        "the command's restore event",
        restored_by("(registry restore)"),
    )
    .await;

    // Retention untags `tmp` and the collection removes its manifest, from `registry gc`.
    let out = support::images::registry(&[
        "gc",
        "--storage",
        &store,
        "--config",
        config.to_str().unwrap(),
    ])
    .unwrap();
    assert!(out.contains("retention: untag team/app:tmp"), "{out}");
    until("retention's untagging replicated", || {
        at_target("tmp").is_none()
    })
    .await;
    let scratch_digest = scratch.digest().to_string();
    until("the collected manifest's delete replicated", || {
        at_target(&scratch_digest).is_none()
    })
    .await;
    until("retention's event", delete_of("tmp")).await;
    until("the collection's event", || {
        events(&got, "all").iter().any(|e| {
            e["action"] == "delete"
                && e["target"]["digest"] == scratch_digest.as_str()
                && e["target"]["tag"].is_null()
        })
    })
    .await;
    // v1 never moved: still there on both sides.
    assert_eq!(at_target("v1"), Some(one.digest().to_string()));
}

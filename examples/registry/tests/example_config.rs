//! The example configuration (`registry.example.toml`: token issuing, users, access rules,
//! immutable `library/*` tags) with a quota added, through the real binary, as a new user meets
//! it and as a tenant attacks it: the UI login form and the admin API take the same passwords as
//! `/token`, anonymous visitors see what anonymous may pull, an upload's challenge asks
//! `pull,push`, a manifest cannot lie about sizes to a quota, an immutable tag keeps what it
//! reaches, a repository's usage needs a login, a UI session ends with its user, and the first
//! anonymous `/v2/` ping is not audited as a refusal.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use fantoccini::Locator;
use registry_core::Digest;
use support::browser::Browser;
use support::login::{auth_file, htpasswd_of};
use support::{Api, Layout, Server, TestImage, noise, skopeo};

/// The example file with this machine's paths, a 20,000-byte quota on `bob/*`, and an audit log.
fn example_config(dir: &Path) -> std::path::PathBuf {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("registry.example.toml"),
    )
    .unwrap();
    let users = htpasswd_of(
        dir,
        &[
            ("alice", "alice-pw"),
            ("bob", "bob-pw"),
            ("carol", "carol-pw"),
        ],
    );
    let text = example.replace(
        r#"htpasswd = "/etc/registry/users.htpasswd""#,
        &format!("htpasswd = {:?}", users.display().to_string()),
    );
    let text = format!(
        "{text}\n[[quota]]\nrepositories = [\"bob/*\"]\nmax_bytes = 20000\n\n[audit]\npath = {:?}\n",
        dir.join("audit.jsonl").display().to_string()
    );
    let file = dir.join("registry.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// The OCI error of a response: status, code and message.
async fn error_of(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    let e = &body["errors"][0];
    (
        status,
        e["code"].as_str().unwrap().to_owned(),
        e["message"].as_str().unwrap().to_owned(),
    )
}

#[cfg_attr(
    not(all(has_chromium, has_skopeo)),
    ignore = "skipped: chromium, chromium-driver and skopeo are needed (apt-get install chromium chromium-driver skopeo)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_configuration_holds_together() {
    let tmp = tempfile::tempdir().unwrap();
    let config = example_config(tmp.path());
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let addr = server.addr.clone();
    let base = format!("http://{addr}");
    let anonymous = reqwest::Client::new();
    let alice = Api::with_basic(&addr, "alice", "alice-pw");
    let bob = Api::with_basic(&addr, "bob", "bob-pw");

    // Every client's first ping: a Bearer challenge, not a refusal in the audit log.
    let r = anonymous.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=")
    );
    // An upload's challenge asks for pull and push, as distribution's does.
    let r = anonymous
        .post(format!("{base}/v2/bob/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains("scope=\"repository:bob/app:pull,push\""),
        "{challenge}"
    );

    // Alice (an admin) publishes library/app:v1, an index of two images: immutable by the
    // example's rule. Basic credentials work on the API in token mode.
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let amd = layout.image(81, 2, 20_000, "amd64");
    let arm = layout.image(82, 1, 20_000, "arm64");
    let child = amd["digest"].as_str().unwrap().to_owned();
    let index = layout.index(vec![amd, arm]);
    layout.tag("v1", index);
    let skopeo_auth = auth_file(tmp.path(), "skopeo");
    skopeo(
        &skopeo_auth,
        &[
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:alice-pw",
            &format!("oci:{}:v1", layout.dir.display()),
            &format!("docker://{addr}/library/app:v1"),
        ],
    )
    .unwrap();
    let child_manifest: serde_json::Value = alice
        .get(&format!("/v2/library/app/manifests/{child}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let layer = child_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    // Neither a layer nor a child of the immutable index can be deleted, even by an admin.
    for path in [
        format!("/v2/library/app/blobs/{layer}"),
        format!("/v2/library/app/manifests/{child}"),
    ] {
        let r = alice
            .http
            .delete(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_of(r).await;
        assert_eq!((status, code.as_str()), (403, "DENIED"), "{path}");
        assert!(message.contains("immutable tag v1"), "{message}");
    }
    let r = alice
        .get(&format!("/v2/library/app/blobs/{layer}"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the layer survived");

    // A quota counts what is stored, not what a manifest declares.
    let big = noise(83, 200_000);
    bob.push_blob_monolithic("bob/app", &big).await.unwrap();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    bob.push_blob_monolithic("bob/app", config).await.unwrap();
    let manifest = |declared: usize| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Digest::of(config).to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": Digest::of(&big).to_string(), "size": declared}],
        })
        .to_string()
    };
    let put = |body: String| {
        bob.http
            .put(format!("{base}/v2/bob/app/manifests/v1"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body)
            .send()
    };
    let (status, code, message) = error_of(put(manifest(1)).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "MANIFEST_INVALID"),
        "{message}"
    );
    assert!(message.contains(&Digest::of(&big).to_string()), "{message}");
    let (status, code, message) = error_of(put(manifest(big.len())).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(message.contains("quota exceeded"), "{message}");
    let small = TestImage::new(84, vec![noise(84, 5_000)]);
    bob.push_image("bob/app", "small", &small).await.unwrap();

    // The admin API takes alice's password in token mode, and a catalog token of hers lists
    // the store.
    let r = alice
        .get("/admin/v1/history/library/app?tag=v1")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let token: serde_json::Value = alice
        .get("/token?service=registry&scope=registry:catalog:*")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let usage: serde_json::Value = anonymous
        .get(format!("{base}/admin/v1/usage"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = usage["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob/app", "library/app"], "{usage}");
    // Bob's usage counts the 5,000-byte layer he pushed, not the refused 200,000 bytes.
    let bob_usage: serde_json::Value = bob
        .get("/admin/v1/usage/bob/app")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let referenced = bob_usage["repositories"][0]["referenced_bytes"]
        .as_u64()
        .unwrap();
    assert!((5_000..20_000).contains(&referenced), "{bob_usage}");
    // Anonymous callers may pull library/*, not read its usage; bob may not see the store.
    let r = anonymous
        .get(format!("{base}/admin/v1/usage/library/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = bob
        .http
        .get(format!("{base}/admin/v1/usage"))
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_of(r).await;
    assert_eq!(status, 403);
    assert!(message.contains("may not see the whole store"), "{message}");

    // The UI: anonymous visitors see library/*; the login form takes the passwords /token does.
    let browser = Browser::start(tmp.path()).await;
    let go = |path: &str| {
        let url = format!("{base}{path}");
        let client = browser.client.clone();
        async move { client.goto(&url).await.unwrap() }
    };
    go("/").await;
    let list = browser.text("#repositories").await;
    assert!(list.contains("library/app"), "{list}");
    assert!(!list.contains("bob/app"), "{list}");
    for user in ["alice", "bob"] {
        go("/login").await;
        let field = |css: &'static str| browser.client.find(Locator::Css(css));
        field("#user").await.unwrap().send_keys(user).await.unwrap();
        let password = format!("{user}-pw");
        field("#password")
            .await
            .unwrap()
            .send_keys(&password)
            .await
            .unwrap();
        browser.click("#submit").await;
        assert_eq!(browser.text("#who").await, user);
        if user == "alice" {
            browser.click("#logout").await;
            browser.text("#login-link").await;
        }
    }
    // Bob, removed from the htpasswd file, is logged out of the UI within the reload interval.
    htpasswd_of(tmp.path(), &[("alice", "alice-pw"), ("carol", "carol-pw")]);
    support::wait::until(
        "bob's session to end",
        Duration::from_secs(20),
        async || {
            go("/").await;
            browser.source().await.contains("id=\"login-link\"")
        },
    )
    .await;
    browser.close().await;

    let audit = std::fs::read_to_string(tmp.path().join("audit.jsonl")).unwrap_or_default();
    assert!(
        !audit
            .lines()
            .any(|l| l.contains("\"kind\":\"refused\"") && l.contains("\"path\":\"/v2/\"")),
        "the anonymous ping was audited as a refusal: {audit}"
    );
}

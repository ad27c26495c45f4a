//! The web UI in headless Chromium against the real binary: browse from the repository list to a
//! multi-platform image pushed with skopeo and a referrer pushed with oci-client, filter the list,
//! log in, delete a tag after confirming (and fail to as a user without the right), and check
//! that an anonymous visitor sees no private repository name. With `UPDATE_SCREENSHOTS=1` the
//! screenshots replace those under `docs/`.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use fantoccini::Locator;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use support::browser::Browser;
use support::login::{auth_file, htpasswd_of};
use support::{Layout, Server, skopeo};

/// Where screenshots go: `docs/` when asked to update them, else a temporary folder.
fn screenshots(tmp: &std::path::Path) -> PathBuf {
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    } else {
        tmp.join("screenshots")
    }
}

/// The digest and size of a manifest, by a HEAD with alice's credentials.
fn head(addr: &str, repo: &str, reference: &str) -> (String, u64) {
    let out = Command::new("curl")
        .args(["-sS", "-I", "-u", "alice:alice-pw", "-H"])
        .arg("accept: application/vnd.oci.image.index.v1+json")
        .arg(format!("http://{addr}/v2/{repo}/manifests/{reference}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let header = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (
        header("docker-content-digest"),
        header("content-length").parse().unwrap(),
    )
}

/// Pushes a signature that refers to `subject` with the oci-client crate.
async fn push_signature(addr: &str, repo: &str, subject: &(String, u64)) {
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let auth = RegistryAuth::Basic("alice".into(), "alice-pw".into());
    let image: oci_client::Reference = format!("{addr}/{repo}:v1").parse().unwrap();
    client
        .auth(&image, &auth, oci_client::RegistryOperation::Push)
        .await
        .unwrap();
    let empty = b"{}";
    let empty_digest = registry_core::Digest::of(empty).to_string();
    client
        .push_blob(&image, empty.to_vec(), &empty_digest)
        .await
        .unwrap();
    let signature = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2 },
        "layers": [],
        "subject": { "mediaType": "application/vnd.oci.image.index.v1+json", "digest": subject.0, "size": subject.1 },
    }))
    .unwrap();
    let at = oci_client::Reference::with_digest(
        image.registry().into(),
        image.repository().into(),
        registry_core::Digest::of(&signature).to_string(),
    );
    client
        .push_manifest_raw(
            &at,
            signature,
            "application/vnd.oci.image.manifest.v1+json"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
}

#[cfg_attr(
    not(all(has_chromium, has_skopeo, has_curl)),
    ignore = "skipped: chromium, chromium-driver, skopeo and curl are needed (apt-get install chromium chromium-driver skopeo curl)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_filter_log_in_and_delete_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let audit = tmp.path().join("audit.jsonl");
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"htpasswd = "{}"
[audit]
path = "{}"
[[access]]
repositories = ["public/*"]
users = ["anonymous"]
actions = ["pull"]
[[access]]
repositories = ["*"]
users = ["alice"]
actions = ["*"]
catalog = true
[[access]]
repositories = ["*"]
users = ["bob"]
actions = ["pull"]
"#,
            users.display(),
            audit.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let addr = server.addr.clone();

    let mut layout = Layout::new(&tmp.path().join("layout"));
    let amd64 = layout.image(71, 2, 20_000, "amd64");
    let arm64 = layout.image(72, 2, 20_000, "arm64");
    let index = layout.index(vec![amd64.clone(), arm64]);
    layout.tag("multi", index);
    layout.tag("single", amd64);
    let skopeo_auth = auth_file(tmp.path(), "skopeo");
    let copy = |name: &str, dest: &str| {
        skopeo(
            &skopeo_auth,
            &[
                "copy",
                "-q",
                "--all",
                "--dest-tls-verify=false",
                "--dest-creds",
                "alice:alice-pw",
                &format!("oci:{}:{name}", layout.dir.display()),
                &format!("docker://{addr}/{dest}"),
            ],
        )
        .unwrap()
    };
    copy("multi", "public/multi:v1");
    copy("single", "public/alpha:v1");
    copy("single", "private/secret:v1");
    push_signature(&addr, "public/multi", &head(&addr, "public/multi", "v1")).await;

    let shots = screenshots(tmp.path());
    std::fs::create_dir_all(&shots).unwrap();
    let browser = Browser::start(tmp.path()).await;
    let base = format!("http://{addr}");
    let go = |path: &str| {
        let url = format!("{base}{path}");
        let client = browser.client.clone();
        async move { client.goto(&url).await.unwrap() }
    };

    // Anonymous: the public repositories, and not even the name of a private one.
    go("/").await;
    let list = browser.text("#repositories").await;
    assert!(
        list.contains("public/multi") && list.contains("public/alpha"),
        "{list}"
    );
    let source = browser.source().await;
    assert!(
        !source.contains("private"),
        "an anonymous visitor saw a private name"
    );
    go("/repository?name=private/secret").await;
    assert_eq!(browser.text("#message").await, "No such repository.");

    // Filter the list.
    go("/").await;
    let filter = browser.client.find(Locator::Css("#filter")).await.unwrap();
    filter.send_keys("alph").await.unwrap();
    filter.send_keys("\u{E007}").await.unwrap(); // Enter
    // The filtered page shows the filter it applied.
    browser.text("#filter[value='alph']").await;
    let list = browser.text("#repositories").await;
    assert!(
        list.contains("public/alpha") && !list.contains("public/multi"),
        "{list}"
    );

    // From the list to the index, its platforms and its referrer, then to one platform.
    go("/").await;
    browser.screenshot(&shots.join("ui-repositories.png")).await;
    browser.click("a.repo[href*='multi']").await;
    let platforms = browser.text(".tag-row .platforms").await;
    assert!(
        platforms.contains("linux/amd64") && platforms.contains("linux/arm64"),
        "{platforms}"
    );
    browser.screenshot(&shots.join("ui-repository.png")).await;
    browser.click("a.tag").await;
    let children = browser.text("#platforms").await;
    assert!(
        children.contains("linux/amd64") && children.contains("linux/arm64"),
        "{children}"
    );
    let referrers = browser.text("#referrers").await;
    assert!(
        referrers.contains("application/vnd.example.signature"),
        "{referrers}"
    );
    browser.screenshot(&shots.join("ui-manifest.png")).await;
    browser.click("a.platform").await;
    let config = browser.text("#config").await;
    assert!(config.contains("linux/amd64"), "{config}");
    assert!(browser.text("#layers").await.contains("tar"));

    // Bob may pull, not delete: no button, and the delete page refuses him.
    let login = |user: &'static str, password: &'static str| {
        let browser = &browser;
        let go = &go;
        async move {
            go("/login").await;
            browser
                .client
                .find(Locator::Css("#user"))
                .await
                .unwrap()
                .send_keys(user)
                .await
                .unwrap();
            browser
                .client
                .find(Locator::Css("#password"))
                .await
                .unwrap()
                .send_keys(password)
                .await
                .unwrap();
            browser.click("#submit").await;
            assert_eq!(browser.text("#who").await, user);
        }
    };
    login("bob", "bob-pw").await;
    assert!(
        browser
            .text("#repositories")
            .await
            .contains("private/secret"),
        "bob may pull everything"
    );
    go("/repository?name=public/multi").await;
    browser.text("#tags").await;
    assert!(
        browser.client.find(Locator::Css("a.delete")).await.is_err(),
        "bob got a delete link"
    );
    go("/delete?name=public/multi&tag=v1").await;
    assert!(browser.text("#message").await.contains("may not delete"));
    browser.click("#logout").await;
    browser.text("#login-link").await;

    // Alice deletes the tag after confirming; it is gone.
    login("alice", "alice-pw").await;
    go("/repository?name=public/alpha").await;
    browser.click("a.delete").await;
    browser.click("#confirm").await;
    // Back on the repository page (waited for: the click only starts the navigation), which says
    // it has no tags left.
    assert_eq!(browser.text("p.empty").await, "No tags.");
    let (code, _) = support::login::curl(&[
        "-u",
        "alice:alice-pw",
        &format!("{base}/v2/public/alpha/manifests/v1"),
    ]);
    assert_eq!(code, 404);
    go("/usage").await;
    assert!(browser.text("#store").await.contains("deduplication ratio"));
    browser.screenshot(&shots.join("ui-usage.png")).await;
    browser.close().await;
    support::login::await_audit(&audit, "the UI's delete and logins", |text| {
        text.lines().any(|l| {
            l.contains("\"kind\":\"write\"")
                && l.contains("\"path\":\"/delete\"")
                && l.contains("\"identity\":\"alice\"")
        }) && text
            .lines()
            .any(|l| l.contains("\"kind\":\"login\"") && l.contains("\"identity\":\"bob\""))
    });
}

//! The web UI in headless Chromium against the real binary: browse from the repository list to a
//! multi-platform image pushed with skopeo and a referrer pushed with oci-client, filter the list,
//! log in, delete a tag after confirming (and fail to as a user without the right), and check
//! that an anonymous visitor sees no private repository name; and, as a team runs it (token
//! mode, an immutable rule, a quota), on a phone-sized window in a dark scheme: tags paged and
//! filtered, no delete for an immutable tag, a Docker image's config, search by name and by
//! digest, each quota's use, and a look at a manifest that is not counted as a pull. With
//! `UPDATE_SCREENSHOTS=1` the screenshots replace those under `docs/`.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use fantoccini::Locator;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use support::browser::{Browser, Window};
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

/// Tags the manifest `tag` names as each of `tags`, with alice's credentials.
fn retag(addr: &str, repo: &str, tag: &str, tags: &[String]) {
    let media = "application/vnd.docker.distribution.manifest.v2+json";
    let manifest = Command::new("curl")
        .args(["-sSf", "-u", "alice:alice-pw", "-H"])
        .arg(format!("accept: {media}"))
        .arg(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
        .output()
        .unwrap();
    assert!(manifest.status.success());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &manifest.stdout).unwrap();
    for other in tags {
        let (code, body) = support::login::curl(&[
            "-u",
            "alice:alice-pw",
            "-X",
            "PUT",
            "-H",
            &format!("content-type: {media}"),
            "--data-binary",
            &format!("@{}", file.path().display()),
            &format!("http://{addr}/v2/{repo}/manifests/{other}"),
        ]);
        assert_eq!(code, 201, "{body}");
    }
}

#[cfg_attr(
    not(all(has_chromium, has_skopeo, has_curl)),
    ignore = "skipped: chromium, chromium-driver, skopeo and curl are needed (apt-get install chromium chromium-driver skopeo curl)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_pages_searches_and_is_protected_on_a_phone_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"htpasswd = "{}"
[token]
issue = true
[[access]]
repositories = ["*"]
users = ["alice"]
actions = ["*"]
catalog = true
[[immutable]]
repositories = ["team/*"]
tags = ["^release-"]
[[quota]]
repositories = ["team/*"]
max_bytes = "1MB"
"#,
            users.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let addr = server.addr.clone();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(81, 2, 20_000, "amd64");
    layout.tag("v1", image);
    // A Docker image (schema 2 manifest, Docker config), then 60 more tags on it.
    skopeo(
        &auth_file(tmp.path(), "skopeo"),
        &[
            "copy",
            "-q",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:alice-pw",
            &format!("oci:{}:v1", layout.dir.display()),
            &format!("docker://{addr}/team/app:release-1"),
        ],
    )
    .unwrap();
    let builds: Vec<String> = (0..60).map(|i| format!("build-{i:02}")).collect();
    retag(&addr, "team/app", "release-1", &builds);
    let (digest, _) = head(&addr, "team/app", "release-1");

    let browser = Browser::start_with(
        tmp.path(),
        Window {
            width: 400,
            height: 860,
            dark: true,
        },
    )
    .await;
    let base = format!("http://{addr}");
    let go = |path: &str| {
        let url = format!("{base}{path}");
        let client = browser.client.clone();
        async move { client.goto(&url).await.unwrap() }
    };
    // Nothing wider than the window, in the dark scheme.
    let fits = |page: &'static str| {
        let browser = &browser;
        async move {
            let wide = browser
                .eval("document.documentElement.scrollWidth - window.innerWidth")
                .await;
            assert!(
                wide.as_i64().unwrap() <= 0,
                "{page} is {wide} px wider than a 400 px window"
            );
            assert_eq!(
                browser
                    .eval("getComputedStyle(document.body).backgroundColor")
                    .await,
                "rgb(18, 21, 28)",
                "{page} is not in the dark scheme"
            );
        }
    };
    go("/login").await;
    fits("the login page").await;
    for (field, text) in [("#user", "alice"), ("#password", "alice-pw")] {
        browser
            .client
            .find(Locator::Css(field))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
    browser.click("#submit").await;
    assert_eq!(browser.text("#who").await, "alice");

    // 61 tags, 50 to a page, most recent push first; the release tag last, on page 2.
    go("/repository?name=team/app").await;
    fits("a repository").await;
    let summary = browser.text("#tags-summary").await;
    assert!(summary.contains("Tags 1–50 of 61"), "{summary}");
    let shots = screenshots(tmp.path());
    std::fs::create_dir_all(&shots).unwrap();
    browser.screenshot(&shots.join("ui-phone-dark.png")).await;
    browser.click("a.next").await;
    let summary = browser.text("#tags-summary").await;
    assert!(summary.contains("Tags 51–61 of 61"), "{summary}");
    browser.text("tr[data-tag='release-1']").await;
    // Filtered: the immutable tag has its badge and no delete; a build tag may be deleted.
    go("/repository?name=team/app&q=release").await;
    let row = browser.text("tr[data-tag='release-1']").await;
    assert!(row.contains("immutable"), "{row}");
    assert!(
        browser
            .client
            .find(Locator::Css("tr[data-tag='release-1'] a.delete"))
            .await
            .is_err(),
        "a delete link for an immutable tag"
    );
    go("/repository?name=team/app&q=build-07").await;
    browser.text("tr[data-tag='build-07'] a.delete").await;

    // The Docker image's config, and looking at it is not pulling it.
    go("/manifest?name=team/app&reference=release-1").await;
    fits("a manifest").await;
    let config = browser.text("#config").await;
    assert!(
        config.contains("linux/amd64") && config.contains("PATH=/usr/bin"),
        "{config}"
    );
    assert!(
        browser
            .source()
            .await
            .contains("application/vnd.docker.distribution.manifest.v2+json")
    );
    go("/manifest?name=team/app&reference=build-07").await;
    browser.text("#config").await;
    let (code, _) = support::login::curl(&[
        "-u",
        "alice:alice-pw",
        &format!("{base}/v2/team/app/manifests/build-08"),
    ]);
    assert_eq!(code, 200);
    go("/repository?name=team/app&q=build-0").await;
    let pulled = |tag: &'static str| {
        let browser = &browser;
        async move {
            browser
                .text(&format!("tr[data-tag='{tag}'] td:nth-child(6)"))
                .await
        }
    };
    assert_eq!(
        pulled("build-07").await,
        "–",
        "the UI's look counted as a pull"
    );
    assert!(
        pulled("build-08").await.ends_with("UTC"),
        "a pull went unrecorded"
    );

    // Search by name and by digest.
    go("/search?q=app").await;
    fits("search").await;
    assert!(
        browser
            .text("#found-repositories")
            .await
            .contains("team/app")
    );
    go(&format!("/search?q={digest}")).await;
    let found = browser.text("#found-manifests").await;
    assert!(
        found.contains("team/app") && found.contains("release-1"),
        "{found}"
    );

    // Each quota's use, in the unit it was written in.
    go("/usage").await;
    fits("usage").await;
    let quotas = browser.text("#quotas").await;
    assert!(
        quotas.contains("team/*") && quotas.contains("1 MB"),
        "{quotas}"
    );
    browser.close().await;
}

//! Content lifecycle through the real binary: retention applied by `registry gc` (and announced by
//! its dry run), immutable tags, history and `registry restore` (pulled back with skopeo),
//! `registry usage --json`, and quotas.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use registry_core::Digest;
use support::{Api, Server, TestImage, noise, skopeo};

/// Runs `registry ARGS --storage fs:DATA --config CONFIG`: (success, stdout, stderr).
fn registry(data: &Path, config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(args)
        .arg("--storage")
        .arg(format!("fs:{}", data.display()))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server over `tmp/data` with `config` written to `tmp/config.toml`.
fn start(tmp: &Path, config: &str) -> (Server, Api, std::path::PathBuf, std::path::PathBuf) {
    let data = tmp.join("data");
    let file = tmp.join("config.toml");
    std::fs::write(&file, config).unwrap();
    let server = Server::start(&data, &["--config", file.to_str().unwrap()]);
    let api = Api::new(&server.addr);
    (server, api, data, file)
}

/// A one-layer image whose bytes `seed` decides.
fn image(seed: u64, layer_size: usize) -> TestImage {
    TestImage::new(seed, vec![noise(seed, layer_size)])
}

async fn tags(api: &Api, repo: &str) -> Vec<String> {
    let body: serde_json::Value = api
        .get(&format!("/v2/{repo}/tags/list"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_and_the_named_tags_and_the_dry_run_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, api, data, config) = start(
        tmp.path(),
        r#"
metadata_ttl_secs = 0
[gc]
grace_secs = 0
delete_untagged = true
history_days = 0
[[retention]]
repositories = ["ci/*"]
keep_last = 5
keep_tags = ["^release-"]
"#,
    );
    // Oldest first: release-1, then b1 … b7; the five newest are b3 … b7.
    let names = ["release-1", "b1", "b2", "b3", "b4", "b5", "b6", "b7"];
    let mut images = Vec::new();
    for (i, tag) in names.iter().enumerate() {
        let img = image(i as u64 + 1, 2000);
        api.push_image("ci/app", tag, &img).await.unwrap();
        images.push(img);
    }
    let elsewhere = image(99, 2000);
    api.push_image("other/app", "old", &elsewhere)
        .await
        .unwrap();

    let (ok, out, err) = registry(&data, &config, &["gc", "--dry-run"]);
    assert!(ok, "{err}");
    for gone in ["b1", "b2"] {
        assert!(
            out.contains(&format!(
                "retention: would untag ci/app:{gone} (retention rule 1: no clause keeps it"
            )),
            "{out}"
        );
    }
    assert!(
        out.contains(
            "retention: would keep ci/app:release-1 (retention rule 1: keep_tags \"^release-\""
        ),
        "{out}"
    );
    assert!(
        out.contains("retention: would keep ci/app:b7 (retention rule 1: keep_last = 5"),
        "{out}"
    );
    assert!(
        out.contains("retention: would keep ci/app:b3 (retention rule 1: keep_last = 5"),
        "{out}"
    );
    assert!(
        !out.contains("other/app:old"),
        "an uncovered repository is not retention's: {out}"
    );
    assert_eq!(
        tags(&api, "ci/app").await.len(),
        8,
        "a dry run removes nothing"
    );

    let (ok, out, err) = registry(&data, &config, &["gc"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed tag ci/app:b1"), "{out}");
    assert_eq!(
        tags(&api, "ci/app").await,
        ["b3", "b4", "b5", "b6", "b7", "release-1"]
    );
    assert_eq!(tags(&api, "other/app").await, ["old"]);
    // Untagged by retention, then collected like anything untagged.
    for gone in &images[1..3] {
        let (status, _) = api
            .answer(&format!("/v2/ci/app/manifests/{}", gone.digest()))
            .await;
        assert_eq!(status, 404);
    }
    for kept in images.iter().skip(3).chain([&images[0]]) {
        api.pull_verified("ci/app", &kept.digest().to_string())
            .await
            .unwrap();
    }
    let (_, out, _) = registry(&data, &config, &["gc", "--dry-run"]);
    assert!(
        !out.contains("would untag"),
        "a second run finds nothing: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_tag_takes_its_digest_again_but_refuses_another_and_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, api, _data, _config) = start(
        tmp.path(),
        r#"
[[immutable]]
repositories = ["prod/*"]
tags = ["^v[0-9]"]
"#,
    );
    let (first, second) = (image(1, 1000), image(2, 1000));
    api.push_image("prod/app", "v1", &first).await.unwrap();
    api.push_image("prod/app", "v1", &first)
        .await
        .expect("the same digest again is a retry, and passes");
    let refused = api.push_image("prod/app", "v1", &second).await.unwrap_err();
    assert!(refused.contains("403"), "{refused}");
    assert!(
        refused.contains("DENIED") && refused.contains("immutable rule 1"),
        "{refused}"
    );
    // Tags no rule names move freely, in the same repository.
    api.push_image("prod/app", "latest", &first).await.unwrap();
    api.push_image("prod/app", "latest", &second).await.unwrap();
    for target in ["v1".to_owned(), first.digest().to_string()] {
        let r = api
            .http
            .delete(format!("{}/v2/prod/app/manifests/{target}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "deleting {target}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("DENIED") && body.contains("immutable"),
            "{body}"
        );
    }
    assert_eq!(
        api.pull_verified("prod/app", "v1").await.unwrap(),
        first.digest()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tag_comes_back_with_restore_and_pulls_with_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, api, data, config) = start(tmp.path(), "metadata_ttl_secs = 0\n");
    let (first, second) = (image(1, 3000), image(2, 3000));
    api.push_image("team/app", "v1", &first).await.unwrap();
    api.push_image("team/app", "v1", &second).await.unwrap();
    let r = api
        .http
        .delete(format!("{}/v2/team/app/manifests/v1", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let cache = tmp.path().join("skopeo");
    std::fs::create_dir_all(&cache).unwrap();
    let source = format!("docker://{}/team/app:v1", server.addr);
    let gone = skopeo(&cache, &["inspect", "--raw", "--tls-verify=false", &source]);
    assert!(gone.is_err(), "the tag is deleted");

    let (ok, out, err) = registry(&data, &config, &["history", "team/app:v1"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" v1 ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("created") && lines[1].contains("moved") && lines[2].contains("deleted"),
        "{out}"
    );

    // By default, back to what it pointed at before its last change.
    let (ok, out, err) = registry(&data, &config, &["restore", "team/app:v1"]);
    assert!(ok, "{err}");
    assert!(out.contains(&second.digest().to_string()), "{out}");
    let layout = tmp.path().join("pulled");
    skopeo(
        &cache,
        &[
            "copy",
            "--src-tls-verify=false",
            &source,
            &format!("oci:{}:v1", layout.display()),
        ],
    )
    .unwrap();
    assert!(support::verify_layout_blobs(&layout) >= 3);
    let raw = skopeo(&cache, &["inspect", "--raw", "--tls-verify=false", &source]).unwrap();
    assert_eq!(Digest::of(raw.as_bytes()), second.digest());

    // Or to any digest its history names; one it never named is refused.
    let first_digest = first.digest().to_string();
    let (ok, _, err) = registry(
        &data,
        &config,
        &["restore", "team/app:v1", "--to", &first_digest],
    );
    assert!(ok, "{err}");
    assert_eq!(
        api.pull_verified("team/app", "v1").await.unwrap(),
        first.digest()
    );
    let stranger = Digest::of(b"never pushed").to_string();
    let (ok, _, err) = registry(
        &data,
        &config,
        &["restore", "team/app:v1", "--to", &stranger],
    );
    assert!(!ok && err.contains("its history never named"), "{err}");

    // The same through the admin path, as JSON.
    let history: serde_json::Value = api
        .get("/admin/v1/history/team/app?tag=v1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let changes = history["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 5, "{history}");
    assert_eq!(changes[4]["to"], first_digest.as_str());
    let r = api
        .http
        .post(format!("{}/admin/v1/restore/team/app?tag=v1", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let record: serde_json::Value = r.json().await.unwrap();
    assert_eq!(record["digest"], second.digest().to_string().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_the_exclusive_and_shared_bytes_pushed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, api, data, config) = start(tmp.path(), "");
    let base = noise(7, 10_000);
    let a = TestImage::new(1, vec![base.clone(), noise(8, 20_000)]);
    let b = TestImage::new(2, vec![base.clone(), noise(9, 30_000)]);
    api.push_image("team/a", "t1", &a).await.unwrap();
    api.push_image("team/a", "t2", &a).await.unwrap();
    api.push_image("team/b", "t1", &b).await.unwrap();
    let total = |img: &TestImage| {
        img.manifest.len() as u64 + img.blobs.iter().map(|b| b.len() as u64).sum::<u64>()
    };
    let shared = base.len() as u64;

    let (ok, out, err) = registry(&data, &config, &["usage", "--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let repo = |name: &str| {
        report["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    for (name, img) in [("team/a", &a), ("team/b", &b)] {
        let r = repo(name);
        assert_eq!(r["referenced_bytes"], total(img), "{name}");
        assert_eq!(r["shared_bytes"], shared, "{name}");
        assert_eq!(r["exclusive_bytes"], total(img) - shared, "{name}");
    }
    // Two tags on one manifest: deleting either frees nothing.
    for tag in repo("team/a")["tags"].as_array().unwrap() {
        assert_eq!(tag["bytes"], total(&a));
        assert_eq!(tag["frees_bytes"], 0);
    }
    // The only tag of team/b frees all but the shared layer.
    assert_eq!(repo("team/b")["tags"][0]["frees_bytes"], total(&b) - shared);
    let store = &report["store"];
    assert_eq!(store["stored_bytes"], total(&a) + total(&b) - shared);
    assert_eq!(store["logical_bytes"], total(&a) + total(&b));

    let (ok, out, err) = registry(&data, &config, &["usage", "team/b"]);
    assert!(ok, "{err}");
    assert!(out.contains("team/b") && !out.contains("team/a"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refuses_the_push_that_crosses_it_and_passes_one_that_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second, third) = (image(1, 4000), image(2, 6000), image(3, 10));
    let total = |img: &TestImage| {
        img.manifest.len() as u64 + img.blobs.iter().map(|b| b.len() as u64).sum::<u64>()
    };
    // Exactly room for the first two images.
    let limit = total(&first) + total(&second);
    let (_server, api, _data, _config) = start(
        tmp.path(),
        &format!("[[quota]]\nrepositories = [\"team/*\"]\nmax_bytes = {limit}\n"),
    );
    api.push_image("team/a", "one", &first).await.unwrap();
    api.push_image("team/b", "two", &second)
        .await
        .expect("a push that reaches the limit exactly passes");
    let refused = api.push_image("team/b", "three", &third).await.unwrap_err();
    assert!(
        refused.contains("403") && refused.contains("DENIED"),
        "{refused}"
    );
    assert!(refused.contains("quota exceeded:"), "{refused}");
    // Stored layers of the group again, under another tag and in another repository: nothing new.
    api.push_image("team/c", "again", &first)
        .await
        .expect("a push that adds nothing new passes at the limit");
    // Other repositories are not the quota's.
    api.push_image("elsewhere/x", "three", &third)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_pushes_never_take_one_server_past_a_quota() {
    const ROUNDS: u64 = 8;
    let tmp = tempfile::tempdir().unwrap();
    let total = |img: &TestImage| {
        img.manifest.len() as u64 + img.blobs.iter().map(|b| b.len() as u64).sum::<u64>()
    };
    // Each round: room for a base image and one more of two same-sized images, pushed at once.
    let rounds: Vec<(TestImage, TestImage, TestImage)> = (0..ROUNDS)
        .map(|i| {
            (
                image(10 + i, 3000),
                image(20 + i, 5000),
                image(30 + i, 5000),
            )
        })
        .collect();
    let mut config = String::new();
    for (i, (base, x, y)) in rounds.iter().enumerate() {
        assert_eq!(total(x), total(y));
        config += &format!(
            "[[quota]]\nrepositories = [\"race{i}/*\"]\nmax_bytes = {}\n",
            total(base) + total(x)
        );
    }
    let (_server, api, _data, _config) = start(tmp.path(), &config);
    let mut passed = 0;
    for (i, (base, x, y)) in rounds.iter().enumerate() {
        api.push_image(&format!("race{i}/base"), "v1", base)
            .await
            .unwrap();
        for (repo, img) in [("x", x), ("y", y)] {
            for blob in &img.blobs {
                api.push_blob_monolithic(&format!("race{i}/{repo}"), blob)
                    .await
                    .unwrap();
            }
        }
        let (rx, ry) = (format!("race{i}/x"), format!("race{i}/y"));
        let (a, b) = tokio::join!(
            api.put_manifest(&rx, "v1", &x.manifest),
            api.put_manifest(&ry, "v1", &y.manifest)
        );
        assert!(
            a.is_ok() != b.is_ok(),
            "round {i}: exactly one fits: {a:?} {b:?}"
        );
        let refused = a.err().or(b.err()).unwrap();
        assert!(refused.contains("quota exceeded"), "{refused}");
        passed += 1;
    }
    assert_eq!(passed, ROUNDS);
}

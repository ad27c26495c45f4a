//! Operations through the real binary: `registry gc`, collection and purging inside the server
//! under a push soak, `/metrics`, JSON logs with request ids, webhook notifications and
//! configuration from `REGISTRY_*` variables.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use registry_core::Digest;
use support::wait::{eventually, until, until_sync};
use support::{Api, Server, TestImage, noise};

fn registry(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Digests of the blobs (manifests included) stored under a filesystem root.
fn stored_blobs(root: &std::path::Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let blobs = root.join("blobs/sha256");
    let Ok(prefixes) = std::fs::read_dir(&blobs) else {
        return found;
    };
    // Folders may vanish under a running collection.
    for prefix in prefixes.flatten() {
        let Ok(dirs) = std::fs::read_dir(prefix.path()) else {
            continue;
        };
        for dir in dirs.flatten() {
            let dir = dir.path();
            if dir.join("data").exists() {
                let hex = dir.file_name().unwrap().to_str().unwrap().to_owned();
                found.insert(format!("sha256:{hex}"));
            }
        }
    }
    found
}

fn image_digests(image: &TestImage) -> BTreeSet<String> {
    image
        .blobs
        .iter()
        .map(|b| Digest::of(b).to_string())
        .chain([image.digest().to_string()])
        .collect()
}

async fn status(api: &Api, path: &str) -> u16 {
    api.answer(path).await.0
}

#[tokio::test]
async fn gc_command_dry_run_then_collect_while_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[]);
    let api = Api::new(&server.addr);
    let old = TestImage::new(1, vec![noise(1, 30_000)]);
    let new = TestImage::new(2, vec![noise(2, 30_000)]);
    api.push_image("team/app", "latest", &old).await.unwrap();
    api.push_image("team/app", "latest", &new).await.unwrap();
    let config = tmp.path().join("registry.toml");
    std::fs::write(&config, "[gc]\ndelete_untagged = true\n").unwrap();
    let storage = format!("fs:{}", data.display());
    let args = |extra: &'static [&'static str]| {
        let mut a = vec![
            "gc",
            "--storage",
            storage.as_str(),
            "--config",
            config.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a
    };

    // Within the default hour of grace nothing goes.
    let (ok, out, err) = registry(&args(&[]), &[]);
    assert!(ok, "{err}");
    assert!(out.contains("removed 0 objects, 0 bytes"), "{out}");

    // Past the grace, the moved tag's history still names the old manifest: kept for
    // `history_days` (7 by default), so that the move can be undone.
    let (ok, out, err) = registry(&args(&["--dry-run"]), &[("REGISTRY_GC_GRACE_SECS", "0")]);
    assert!(ok, "{err}");
    assert!(
        !out.contains(&format!("manifest team/app@{}", old.digest())),
        "{out}"
    );

    // Variables shorten the grace and the history; a dry run only tells.
    let no_grace = [
        ("REGISTRY_GC_GRACE_SECS", "0"),
        ("REGISTRY_GC_HISTORY_DAYS", "0"),
    ];
    let (ok, out, err) = registry(&args(&["--dry-run"]), &no_grace);
    assert!(ok, "{err}");
    let gone = format!("would remove manifest team/app@{}", old.digest());
    assert!(out.contains(&gone), "{out}");
    assert!(out.contains("(dry run)"), "{out}");
    let both = &image_digests(&old) | &image_digests(&new);
    assert_eq!(stored_blobs(&data), both);
    api.pull_verified("team/app", &old.digest().to_string())
        .await
        .unwrap();

    let (ok, out, err) = registry(&args(&[]), &no_grace);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("removed manifest team/app@{}", old.digest())),
        "{out}"
    );
    assert_eq!(stored_blobs(&data), image_digests(&new));
    // The server sees another process's removal once its metadata cache expires (5 s).
    let gone_path = format!("/v2/team/app/manifests/{}", old.digest());
    let gone = format!("{gone_path} answered 404");
    until(&gone, Duration::from_secs(10), async || {
        status(&api, &gone_path).await == 404
    })
    .await;
    assert_eq!(
        api.pull_verified("team/app", "latest").await.unwrap(),
        new.digest()
    );
}

/// Pushers work like real clients (`HEAD` each blob, upload only what is missing, then the
/// manifest), reusing layers from a small pool and moving their tag at every push, so that
/// manifests and layers keep falling out of use and coming back, while the server collects every
/// second with a two-second grace. No push may fail; afterwards every tag pulls and only what the
/// tags reach is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_soak_while_collecting() {
    const PUSHERS: u64 = 6;
    const SOAK: Duration = Duration::from_secs(20);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_with(
        &format!("fs:{}", data.display()),
        &[],
        &[
            ("REGISTRY_GC_INTERVAL_SECS", "1"),
            ("REGISTRY_GC_GRACE_SECS", "2"),
            ("REGISTRY_GC_DELETE_UNTAGGED", "true"),
            ("REGISTRY_GC_HISTORY_DAYS", "0"),
            ("REGISTRY_UPLOADS_PURGE_AFTER_SECS", "3"),
        ],
    );
    let api = Api::new(&server.addr);
    let abandoned = api.start_upload("soak/abandoned").await.unwrap();
    api.patch(&abandoned, 0, b"never finished").await.unwrap();
    let (pushes, tagged) = Api::push_soak(&server.addr, PUSHERS, SOAK).await;
    for (p, (repo, image)) in tagged.iter().enumerate() {
        let got = api.pull_verified(repo, &format!("t{p}")).await.unwrap();
        assert_eq!(got, image.digest());
    }
    // Past the grace period, what no tag reaches is gone, and so is the abandoned upload.
    let reachable: BTreeSet<String> = tagged
        .iter()
        .flat_map(|(_, image)| image_digests(image))
        .collect();
    until_sync(
        "only reachable blobs stored",
        Duration::from_secs(30),
        || stored_blobs(&data) == reachable,
    )
    .await;
    let leftovers: Vec<_> = std::fs::read_dir(data.join("uploads"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(leftovers.len(), 0, "uploads left: {leftovers:?}");
    for (p, (repo, _)) in tagged.iter().enumerate() {
        api.pull_verified(repo, &format!("t{p}")).await.unwrap();
    }
    let metrics = api.get("/metrics").await.unwrap().text().await.unwrap();
    let runs = metrics
        .lines()
        .find(|l| l.starts_with("registry_gc_runs_total{kind=\"gc\",result=\"ok\"}"))
        .unwrap_or_else(|| panic!("no collection counted:\n{metrics}"));
    let runs: f64 = runs.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(runs >= 3.0, "{runs} collections in the soak");
    assert!(!metrics.contains("result=\"error\""), "{metrics}");
    println!("soak: {pushes} pushes by {PUSHERS} clients, {runs} collections, no error");
}

#[tokio::test]
async fn metrics_count_requests_bytes_and_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let api = Api::new(&server.addr);
    let image = TestImage::new(7, vec![noise(7, 100_000)]);
    api.push_image("m/app", "v1", &image).await.unwrap();
    api.pull_verified("m/app", "v1").await.unwrap();
    assert_eq!(status(&api, "/v2/m/app/manifests/nope").await, 404);
    let r = api.get("/metrics").await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let series = r#"registry_http_requests_total{route="manifest",method="PUT",status="201"}"#;
    assert_eq!(value(series), 1.0);
    let missing = r#"registry_http_requests_total{route="manifest",method="GET",status="404"}"#;
    assert_eq!(value(missing), 1.0);
    assert!(value("registry_http_received_bytes_total") >= 100_000.0);
    assert!(value("registry_http_sent_bytes_total") >= 100_000.0);
    assert_eq!(value("registry_uploads_in_flight"), 0.0);
    assert!(
        value(r#"registry_http_request_duration_seconds_count{route="blob",method="GET"}"#) >= 2.0
    );
    assert!(value(r#"registry_storage_operation_duration_seconds_count{operation="put"}"#) >= 3.0);
    // The change feed's count: the push's manifest, its two blobs, its tag, its repository.
    let changes = |kind: &str| {
        value(&format!(
            r#"registry_changes_total{{kind="{kind}",origin="api"}}"#
        ))
    };
    assert_eq!(changes("manifest_stored"), 1.0);
    assert_eq!(changes("blob_stored"), 2.0);
    assert_eq!(changes("tag_moved"), 1.0);
    assert_eq!(changes("repository_created"), 1.0);
    assert!(!text.contains("m/app"), "no repository names in metrics");

    // Off by a variable.
    let off = Server::start_with(
        &format!("fs:{}", tmp.path().join("other").display()),
        &[],
        &[("REGISTRY_METRICS_ENABLED", "false")],
    );
    assert_eq!(status(&Api::new(&off.addr), "/metrics").await, 404);
}

#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &format!("fs:{}", tmp.path().join("data").display()),
        &[],
        &[("REGISTRY_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
    );
    let api = Api::new(&server.addr);
    let r = api
        .http
        .get(format!("{}/v2/", api.base))
        .header("x-request-id", "soak-test-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "soak-test-42");
    let line = eventually(
        "a JSON log line for the request",
        Duration::from_secs(10),
        async || {
            let lines = server.log.lock().unwrap().clone();
            let parsed: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
                .collect();
            parsed
                .into_iter()
                .find(|v| v["span"]["id"] == "soak-test-42" && v["fields"]["status"] == 200)
        },
    )
    .await;
    assert_eq!(line["span"]["route"], "base");
    assert_eq!(line["span"]["method"], "GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_filtered_events_and_never_slow_requests() {
    let (base, got) = support::webhooks::receiver().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[notifications.endpoints]]
name = "all"
url = "{base}/all"
headers = {{ Authorization = "Bearer secret" }}

[[notifications.endpoints]]
name = "manifest-deletes"
url = "{base}/deletes"
actions = ["delete"]
media_types = ["application/vnd.oci.image.manifest.v1+json"]

[[notifications.endpoints]]
name = "failing"
url = "{base}/fail"
max_retries = 2
backoff_ms = 10

[[notifications.endpoints]]
name = "slow"
url = "{base}/slow"
queue_size = 1
"#
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let api = Api::new(&server.addr);
    let image = TestImage::new(3, vec![noise(3, 10_000)]);
    let started = Instant::now();
    api.push_image("hooks/app", "v1", &image).await.unwrap();
    api.pull_verified("hooks/app", "v1").await.unwrap();
    let delete = api
        .http
        .delete(format!(
            "{}/v2/hooks/app/manifests/{}",
            api.base,
            image.digest()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 202);
    // The slow endpoint holds its first post for ten seconds; requests did not wait for it.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "requests waited for the slow endpoint"
    );
    let events = eventually("nine events", Duration::from_secs(10), async || {
        let events: Vec<(String, serde_json::Value)> = got
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(name, v)| {
                v["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (name.clone(), e.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        // "all": 2 blob pushes, 1 manifest push, 1 manifest pull, 2 blob pulls, the delete of
        // the manifest and of its tag; "deletes": the manifest's delete.
        (events.len() >= 9).then_some(events)
    })
    .await;
    let all: Vec<&serde_json::Value> = events
        .iter()
        .filter(|(n, _)| n == "all")
        .map(|(_, e)| e)
        .collect();
    let kinds: Vec<(String, String)> = all
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"]["mediaType"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    let count = |action: &str, media: &str| {
        kinds
            .iter()
            .filter(|(a, m)| a == action && m == media)
            .count()
    };
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const BLOB: &str = "application/octet-stream";
    assert_eq!(count("push", BLOB), 2, "{kinds:?}");
    assert_eq!(count("push", MANIFEST), 1, "{kinds:?}");
    assert_eq!(count("pull", MANIFEST), 1, "{kinds:?}");
    assert_eq!(count("pull", BLOB), 2, "{kinds:?}");
    assert_eq!(count("delete", MANIFEST), 1, "{kinds:?}");
    let tag_deleted = all
        .iter()
        .find(|e| e["action"] == "delete" && e["target"]["tag"] == "v1");
    assert!(tag_deleted.is_some(), "{kinds:?}");
    let push = all
        .iter()
        .find(|e| e["action"] == "push" && e["target"]["mediaType"] == MANIFEST)
        .unwrap();
    assert_eq!(push["target"]["repository"], "hooks/app");
    assert_eq!(push["target"]["tag"], "v1");
    assert_eq!(push["target"]["digest"], image.digest().to_string());
    assert!(push["request"]["id"].as_str().unwrap().len() >= 16);
    let deletes: Vec<_> = events.iter().filter(|(n, _)| n == "deletes").collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].1["action"], "delete");

    // The failing endpoint's events are dropped after their retries, the slow one's queue
    // overflowed: both counted.
    until("both drops counted", Duration::from_secs(10), async || {
        let text = api.get("/metrics").await.unwrap().text().await.unwrap();
        let failed = text.lines().any(|l| {
            l.starts_with(r#"registry_notifications_dropped_events_total{endpoint="failing",reason="failed"}"#)
        });
        let full = text.lines().any(|l| {
            l.starts_with(r#"registry_notifications_dropped_events_total{endpoint="slow",reason="queue_full"}"#)
        });
        failed && full
    })
    .await;
}

#[test]
fn configuration_from_variables_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("registry.toml");
    std::fs::write(&file, "max_connections = 10\n[gc]\ngrace_secs = 60\n").unwrap();
    let file = file.to_str().unwrap();
    let (ok, out, err) = registry(
        &["check-config", file],
        &[
            ("REGISTRY_GC_GRACE_SECS", "120"),
            ("REGISTRY_LOG_FORMAT", "json"),
            ("REGISTRY_NO_SUCH_KEY", "1"),
        ],
    );
    assert!(ok, "{err}");
    // The configuration in force, as TOML (what check-config adds as comments aside).
    let in_force: String = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let in_force: toml::Table = toml::from_str(&in_force).unwrap();
    assert_eq!(
        in_force["gc"]["grace_secs"].as_integer(),
        Some(120),
        "the variable wins: {out}"
    );
    assert_eq!(in_force["max_connections"].as_integer(), Some(10), "{out}");
    assert_eq!(in_force["log"]["format"].as_str(), Some("json"), "{out}");
    assert!(err.contains("REGISTRY_NO_SUCH_KEY"), "{err}");
    let (ok, _, err) = registry(
        &["check-config", file],
        &[("REGISTRY_GC_GRACE_SECS", "an hour")],
    );
    assert!(!ok);
    assert!(err.contains("REGISTRY_GC_GRACE_SECS"), "{err}");
    std::fs::write(tmp.path().join("bad.toml"), "[gc]\ngrace = 60\n").unwrap();
    let bad = tmp.path().join("bad.toml");
    let (ok, _, err) = registry(&["check-config", bad.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("grace"), "{err}");
}

/// The server's periodic collection is incremental, and walks the whole store once its full
/// interval has passed since the last walk (or its start). The first collection of a fresh store
/// walks it anyway (no full one ran under these settings): a second walk is the interval's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_collections_walk_the_store_at_the_full_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &format!("fs:{}", tmp.path().join("data").display()),
        &[],
        &[
            ("REGISTRY_GC_INTERVAL_SECS", "1"),
            ("REGISTRY_GC_FULL_INTERVAL_SECS", "3"),
        ],
    );
    let api = Api::new(&server.addr);
    api.push_image("team/app", "v1", &TestImage::new(1, vec![noise(1, 1000)]))
        .await
        .unwrap();
    let logged = |walked: &str| {
        let needle = format!("walked_store={walked}");
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("gc done") && l.contains(&needle))
            .count()
    };
    until_sync(
        "an incremental and a full collection",
        Duration::from_secs(30),
        || logged("false") >= 2 && logged("true") >= 1,
    )
    .await;
}

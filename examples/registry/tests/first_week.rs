//! What a new operator meets in the first week, through the real binary: commands pointed at no
//! store refuse (naming the store they would have used), each subcommand's help lists its own
//! flags, `gc` says why it kept what it kept, history speaks RFC 3339 and records restores as
//! such with who made them, startup errors name the setting, a quota speaks the unit it was
//! written in, `/token` requests are logged, and `registry copy` finds certificates and logins
//! where podman and docker keep them and says why a registry cannot be used.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::login::{curl, htpasswd_of};
use support::{Api, Layout, Server, TestImage, noise};

/// `registry ARGS` run in `dir` with `env`: (success, stdout, stderr).
fn registry_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn commands_pointed_at_no_store_refuse_and_help_lists_their_own_flags() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["gc"][..],
        &["usage"],
        &["scrub"],
        &["history", "team/app"],
        &["restore", "team/app:v1"],
    ] {
        let (ok, out, err) = registry_in(tmp.path(), args, &[]);
        assert!(!ok, "{args:?} ran: {out}");
        assert!(
            err.contains("no store at fs:./registry-data"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !tmp.path().join("registry-data").exists(),
        "a store was created where none was asked for"
    );
    // The store flags before the subcommand, as earlier versions took them, are its own; the
    // server's flags are not.
    let (ok, _, err) = registry_in(tmp.path(), &["--storage", "fs:elsewhere", "gc"], &[]);
    assert!(!ok && err.contains("no store at fs:elsewhere"), "{err}");
    let (ok, _, err) = registry_in(tmp.path(), &["--listen", "127.0.0.1:0", "gc"], &[]);
    assert!(!ok && err.contains("go without a subcommand"), "{err}");
    let (_, help, _) = registry_in(tmp.path(), &["gc", "--help"], &[]);
    assert!(
        help.contains("--dry-run") && help.contains("--storage"),
        "{help}"
    );
    assert!(
        !help.contains("--listen") && !help.contains("--htpasswd"),
        "{help}"
    );
    let (_, help, _) = registry_in(tmp.path(), &["copy", "--help"], &[]);
    assert!(
        help.contains("--dest-cert-dir") && !help.contains("--storage"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_history_and_restore_say_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "[gc]\ndelete_untagged = true\ngrace_secs = 0\n").unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let api = Api::new(&server.addr);
    let first = TestImage::new(1, vec![noise(1, 4000)]);
    let second = TestImage::new(2, vec![noise(2, 4000)]);
    api.push_image("team/app", "v1", &first).await.unwrap();
    api.push_image("team/app", "v1", &second).await.unwrap();
    drop(server);
    let store = format!("fs:{}", data.display());
    let with_store = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--storage", &store, "--config", config.to_str().unwrap()]);
        registry_in(tmp.path(), &all, &[("USER", "ops")])
    };
    // The first manifest is untagged, kept only by the tag's recent history: gc says so.
    let (ok, out, err) = with_store(&["gc"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("gc: kept 1 manifests named by tag history of the last 7 days"),
        "{out}"
    );
    // The first collection of a store walks it; the next reads what changed since, and the
    // full one (an audit) finds nothing more to remove.
    assert!(out.contains("gc: walked the whole store"), "{out}");
    let (ok, out, err) = with_store(&["gc"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("gc: incremental: read the candidate records"),
        "{out}"
    );
    let (ok, out, err) = with_store(&["gc", "--full", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.contains("gc: walked the whole store"), "{out}");
    assert!(out.contains("would remove 0 objects"), "{out}");
    let (ok, out, err) = with_store(&["restore", "team/app:v1"]);
    assert!(ok, "{err}");
    assert!(out.contains(&first.digest().to_string()), "{out}");
    let (_, out, _) = with_store(&["history", "team/app:v1"]);
    let lines: Vec<&str> = out.lines().collect();
    // RFC 3339 times; the restore named as such, with who made it.
    assert!(
        lines[0].len() > 20 && &lines[0][4..5] == "-" && &lines[0][10..11] == "T",
        "{out}"
    );
    assert!(
        lines[2].contains(" restored ") && lines[2].contains("by ops (registry restore)"),
        "{out}"
    );
    let (_, out, _) = with_store(&["history", "--json", "team/app:v1"]);
    let changes: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(changes[0]["at"].as_u64().is_some() && changes[0]["time"].as_str().is_some());
    assert_eq!(changes[2]["restored"], true);
}

#[test]
fn startup_errors_name_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let start = |args: &[&str]| {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        registry_in(tmp.path(), &all, &[])
    };
    let (ok, _, err) = start(&["--storage", &format!("fs:{}", file.display())]);
    assert!(!ok && err.contains("is not a directory"), "{err}");
    let missing = tmp.path().join("users.htpasswd");
    let (ok, _, err) = start(&[
        "--storage",
        "memory",
        "--htpasswd",
        missing.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains(&format!("htpasswd file {} not found", missing.display())),
        "{err}"
    );
    let (_, cert, _) = support::pki::test_pki(&tmp.path().join("one"));
    let (_, _, other_key) = support::pki::test_pki(&tmp.path().join("two"));
    let (ok, _, err) = start(&[
        "--storage",
        "memory",
        "--tls-cert",
        &cert,
        "--tls-key",
        &other_key,
    ]);
    assert!(
        !ok && err.contains("does not match the certificate"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_speak_their_unit_and_token_requests_are_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "htpasswd = \"{}\"\n[token]\nissue = true\n[[quota]]\nrepositories = [\"alice/*\"]\nmax_bytes = \"20KB\"\n",
            users.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        "memory",
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    );
    let (code, _) = curl(&[
        "-u",
        "alice:alice-pw",
        &format!(
            "http://{}/token?service=registry&scope=repository:alice/app:pull,push",
            server.addr
        ),
    ]);
    assert_eq!(code, 200);
    let image = TestImage::new(3, vec![noise(3, 30_000)]);
    let api = Api::with_basic(&server.addr, "alice", "alice-pw");
    let refused = api.push_image("alice/app", "v1", &image).await.unwrap_err();
    assert!(refused.contains("of 20 KB used"), "{refused}");
    let logged = || {
        let log = server.log.lock().unwrap();
        log.iter()
            .any(|l| l.contains("path=/token") && l.contains("status=200"))
    };
    assert!(
        support::wait::holds_within(std::time::Duration::from_secs(10), logged),
        "no request line for /token: {:?}",
        server.log.lock().unwrap()
    );
}

#[cfg_attr(
    not(all(has_skopeo, has_curl)),
    ignore = "skipped: skopeo and curl are needed (apt-get install skopeo curl)"
)]
#[test]
fn copy_finds_certificates_and_logins_and_says_why_a_registry_is_unusable() {
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    let (certs, cert, key) = support::pki::test_pki(tmp.path());
    let tls = Server::start(
        &tmp.path().join("tls"),
        &[
            "--htpasswd",
            users.to_str().unwrap(),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let plain = Server::start(&tmp.path().join("plain"), &[]);
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image(11, 1, 5_000, "amd64");
    layout.tag("v1", image);
    let src = format!("oci:{}:v1", layout.dir.display());
    // Logins where docker keeps them.
    let docker_config = tmp.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6YWxpY2UtcHc="}}}}}}"#,
            tls.addr
        ),
    )
    .unwrap();
    let env = [
        ("DOCKER_CONFIG", docker_config.to_str().unwrap()),
        ("HOME", tmp.path().to_str().unwrap()),
        ("XDG_RUNTIME_DIR", tmp.path().to_str().unwrap()),
    ];
    let copy = |extra: &[&str], dest: &str| {
        let mut args = vec!["copy"];
        args.extend_from_slice(extra);
        args.extend([src.as_str(), dest]);
        registry_in(tmp.path(), &args, &env)
    };
    let to_tls = format!("docker://{}/alice/app:v1", tls.addr);
    let (ok, _, err) = copy(&[], &to_tls);
    assert!(!ok && err.contains("certificate not trusted"), "{err}");
    let (ok, out, err) = copy(&["--dest-cert-dir", certs.to_str().unwrap()], &to_tls);
    assert!(ok, "{err}");
    assert!(out.contains("copied"), "{out}");
    let (ok, _, err) = copy(&[], &format!("docker://{}/team/app:v1", plain.addr));
    assert!(!ok && err.contains("speaks plain HTTP"), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (ok, _, err) = copy(&[], &format!("docker://127.0.0.1:{port}/team/app:v1"));
    assert!(!ok && err.contains("unreachable"), "{err}");
}

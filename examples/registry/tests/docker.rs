//! The Docker engine against the real binary, the story of a private registry: `docker login`
//! (a wrong password refused), `docker tag HOST/USER/NAME:TAG`, `docker push`, `docker pull`,
//! `docker logout` (then an anonymous pull refused), over plain HTTP and over TLS with an
//! htpasswd file, and in token mode with access rules and a quota, where docker prints why a
//! push is refused.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::Server;
use support::docker::Docker;
use support::login::htpasswd_of;

/// Login, tag, push, remove, pull, logout, refused anonymous pull: as a user of `registry`
/// (`HOST:PORT`), with the image built as `local`.
fn story(docker: &Docker, config: &Path, registry: &str, local: &str) {
    let wrong = docker.run_with_input(
        config,
        &["login", registry, "-u", "alice", "--password-stdin"],
        "wrong",
    );
    assert!(wrong.is_err(), "a wrong password logged in");
    docker
        .run_with_input(
            config,
            &["login", registry, "-u", "alice", "--password-stdin"],
            "alice-pw",
        )
        .unwrap();
    let remote = format!("{registry}/alice/app:v1");
    docker.run_as(config, &["tag", local, &remote]).unwrap();
    docker.run_as(config, &["push", &remote]).unwrap();
    docker.run_as(config, &["rmi", &remote]).unwrap();
    docker.run_as(config, &["pull", &remote]).unwrap();
    let inspected = docker
        .run_as(
            config,
            &["image", "inspect", "--format", "{{.Id}}", &remote],
        )
        .unwrap();
    let built = docker
        .run_as(config, &["image", "inspect", "--format", "{{.Id}}", local])
        .unwrap();
    assert_eq!(inspected, built, "pulled back another image");
    docker.run_as(config, &["logout", registry]).unwrap();
    docker.run_as(config, &["rmi", &remote]).unwrap();
    let anonymous = docker.run_as(config, &["pull", &remote]).unwrap_err();
    // Over TLS, dockerd (which takes loopback registries for insecure ones) ends by trying
    // plain HTTP, and reports the TLS port's readable answer to that.
    assert!(
        anonymous.contains("no basic auth credentials")
            || anonymous.contains("unauthorized")
            || anonymous.contains("requested access to the resource is denied")
            || anonymous.contains("Client sent an HTTP request to an HTTPS server"),
        "{anonymous}"
    );
}

#[cfg_attr(
    not(has_docker),
    ignore = "skipped: the Docker engine is not installed (apt-get install docker.io)"
)]
#[test]
fn docker_logs_in_pushes_and_pulls_over_http_and_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    let users = users.to_str().unwrap();
    let plain = Server::start(&tmp.path().join("plain"), &["--htpasswd", users]);
    let (_, cert, key) = support::pki::test_pki(tmp.path());
    let tls = Server::start(
        &tmp.path().join("tls"),
        &["--htpasswd", users, "--tls-cert", &cert, "--tls-key", &key],
    );
    let docker = Docker::start(&tmp.path().join("docker"), &[&plain.addr]);
    docker.build_scratch("local/app:v1", "the seed's story");
    story(
        &docker,
        &tmp.path().join("cfg-plain"),
        &plain.addr,
        "local/app:v1",
    );
    // dockerd takes 127.0.0.0/8 for insecure, yet speaks TLS first to a registry that does.
    story(
        &docker,
        &tmp.path().join("cfg-tls"),
        &tls.addr,
        "local/app:v1",
    );
}

#[cfg_attr(
    not(has_docker),
    ignore = "skipped: the Docker engine is not installed (apt-get install docker.io)"
)]
#[test]
fn docker_in_token_mode_is_told_why_a_push_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let file = tmp.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            r#"htpasswd = "{}"
[token]
issue = true
[[quota]]
repositories = ["alice/small"]
max_bytes = 1000
[[access]]
repositories = ["{{user}}/*"]
users = ["*"]
actions = ["*"]
"#,
            users.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", file.to_str().unwrap()],
    );
    let docker = Docker::start(&tmp.path().join("docker"), &[&server.addr]);
    docker.build_scratch("local/app:v1", &"x".repeat(5000));
    story(
        &docker,
        &tmp.path().join("cfg"),
        &server.addr,
        "local/app:v1",
    );

    let config = tmp.path().join("cfg-bob");
    docker
        .run_with_input(
            &config,
            &["login", &server.addr, "-u", "bob", "--password-stdin"],
            "bob-pw",
        )
        .unwrap();
    // Into another user's namespace: refused (the token grants nothing there).
    let other = format!("{}/alice/app:v2", server.addr);
    docker
        .run_as(&config, &["tag", "local/app:v1", &other])
        .unwrap();
    let refused = docker.run_as(&config, &["push", &other]).unwrap_err();
    assert!(
        refused.contains("denied") || refused.contains("unauthorized"),
        "{refused}"
    );
    // Over a quota: docker prints the quota's figures, not only "denied".
    let alice = tmp.path().join("cfg-alice");
    docker
        .run_with_input(
            &alice,
            &["login", &server.addr, "-u", "alice", "--password-stdin"],
            "alice-pw",
        )
        .unwrap();
    let small = format!("{}/alice/small:v1", server.addr);
    docker
        .run_as(&alice, &["tag", "local/app:v1", &small])
        .unwrap();
    let over = docker.run_as(&alice, &["push", &small]).unwrap_err();
    assert!(over.contains("quota exceeded"), "{over}");
}

//! The registry's container image (`scripts/image.sh`, `registry-rs:latest`) run by the Docker
//! engine as teams run distribution's `registry` image: `docker run` with a volume, then
//! `docker push` and `docker pull localhost:PORT/registry-demo`; TLS and htpasswd through
//! distribution's `REGISTRY_*` variables (`docker login`, a wrong password refused, push, pull,
//! logout, an anonymous pull refused); a `config.yml` mounted at
//! `/etc/docker/registry/config.yml`; the data kept across a restart and a new container on the
//! same volume; a volume distribution's root user wrote refused with what to do, then served;
//! the container healthy, running as a user that is not root, and the image under 60 MiB.
//!
//! The engine is the test run's own (`scripts/dockerd.sh`, `REGISTRY_TEST_DOCKER_HOST`), into
//! which `scripts/test.sh` built the image. Containers use the host's network (the engine has
//! no bridge), each on a free port of its own.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::docker::Docker;
use support::login::htpasswd_of;
use support::wait::{holds_within, until_blocking};

const IMAGE: &str = "registry-rs:latest";

/// A container of the image, removed (with its volume when asked) when dropped.
struct Container<'a> {
    docker: &'a Docker,
    name: String,
}

impl<'a> Container<'a> {
    /// `docker run -d --network host ARGS registry-rs:latest`, under a name of its own.
    fn run(docker: &'a Docker, args: &[&str]) -> Container<'a> {
        let name = format!("registry-test-{}", uuid::Uuid::new_v4().simple());
        let mut all = vec!["run", "-d", "--name", &name, "--network", "host"];
        all.extend_from_slice(args);
        all.push(IMAGE);
        docker.run(&all).unwrap();
        Container { docker, name }
    }

    fn inspect(&self, format: &str) -> String {
        self.docker
            .run(&["inspect", "--format", format, &self.name])
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Waits (a minute at most) until Docker reports the container healthy.
    fn await_healthy(&self) {
        let healthy = || self.inspect("{{.State.Health.Status}}") == "healthy";
        assert!(
            holds_within(Duration::from_secs(60), healthy),
            "the container is {}: {}",
            self.inspect("{{.State.Health.Status}}"),
            self.docker.logs(&self.name)
        );
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.docker.run(&["rm", "-f", &self.name]);
    }
}

/// A file the container's user (65532) may read.
fn readable(path: &Path, text: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[cfg_attr(
    not(has_image),
    ignore = "skipped: the registry image in a Docker engine of the tests' own is needed (scripts/dockerd.sh start DIR; . DIR/env; scripts/image.sh)"
)]
#[test]
fn the_image_is_a_drop_in_for_the_registry_image() {
    let tmp = tempfile::tempdir().unwrap();
    let host = std::env::var("REGISTRY_TEST_DOCKER_HOST")
        .expect("REGISTRY_TEST_DOCKER_HOST (scripts/dockerd.sh start DIR; . DIR/env)");
    let docker = Docker::attach(&host, &tmp.path().join("client"));

    // The image: small, a user that is not root, the registry image's port and volume, and a
    // health check that runs the binary.
    let size: u64 = docker
        .run(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(size < 60 << 20, "the image takes {} MiB", size >> 20);
    let config = docker
        .run(&["image", "inspect", "--format", "{{json .Config}}", IMAGE])
        .unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["User"], "65532:65532");
    assert!(config["ExposedPorts"].get("5000/tcp").is_some(), "{config}");
    assert!(
        config["Volumes"].get("/var/lib/registry").is_some(),
        "{config}"
    );
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/registry", "healthcheck"])
    );

    // docker run with a volume, then the seed's story: push, pull by localhost.
    let volume = format!("registry-test-{}", uuid::Uuid::new_v4().simple());
    let port = support::free_port();
    let addr = format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}");
    let mount = format!("{volume}:/var/lib/registry");
    let plain = Container::run(&docker, &["-e", &addr, "-v", &mount]);
    plain.await_healthy();
    let pid = plain.inspect("{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65532"),
        "{uid}"
    );
    docker.build_scratch("registry-demo", "pushed to our image");
    let demo = format!("localhost:{port}/registry-demo");
    docker.run(&["tag", "registry-demo", &demo]).unwrap();
    docker.run(&["push", &demo]).unwrap();
    docker.run(&["rmi", &demo]).unwrap();
    docker.run(&["pull", &demo]).unwrap();
    // Restarted, it still serves it; so does a new container on the same volume.
    docker.run(&["restart", &plain.name]).unwrap();
    docker.run(&["rmi", &demo]).unwrap();
    plain.await_healthy();
    docker.run(&["pull", &demo]).unwrap();
    drop(plain);
    docker.run(&["rmi", &demo]).unwrap();
    let again = Container::run(&docker, &["-e", &addr, "-v", &mount]);
    again.await_healthy();
    docker.run(&["pull", &demo]).unwrap();
    drop(again);
    let _ = docker.run(&["volume", "rm", &volume]);

    // TLS and htpasswd through distribution's variables, as its documentation runs them.
    let (certs, cert, key) = support::pki::test_pki(tmp.path());
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    readable(&secrets.join("domain.crt"), &std::fs::read(&cert).unwrap());
    readable(&secrets.join("domain.key"), &std::fs::read(&key).unwrap());
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    readable(&secrets.join("htpasswd"), &std::fs::read(&users).unwrap());
    drop(certs);
    let port = support::free_port();
    let tls = Container::run(
        &docker,
        &[
            "-v",
            &format!("{}:/auth:ro", secrets.display()),
            "-e",
            &format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}"),
            "-e",
            "REGISTRY_AUTH=htpasswd",
            "-e",
            "REGISTRY_AUTH_HTPASSWD_REALM=Registry Realm",
            "-e",
            "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
            "-e",
            "REGISTRY_HTTP_TLS_CERTIFICATE=/auth/domain.crt",
            "-e",
            "REGISTRY_HTTP_TLS_KEY=/auth/domain.key",
        ],
    );
    tls.await_healthy();
    let registry = format!("127.0.0.1:{port}");
    let logins = tmp.path().join("logins");
    let login = |password: &str| {
        docker.run_with_input(
            &logins,
            &["login", &registry, "-u", "alice", "--password-stdin"],
            password,
        )
    };
    assert!(login("wrong").is_err(), "a wrong password logged in");
    login("alice-pw").unwrap();
    let mine = format!("{registry}/alice/registry-demo:v1");
    docker
        .run_as(&logins, &["tag", "registry-demo", &mine])
        .unwrap();
    docker.run_as(&logins, &["push", &mine]).unwrap();
    docker.run_as(&logins, &["rmi", &mine]).unwrap();
    docker.run_as(&logins, &["pull", &mine]).unwrap();
    docker.run_as(&logins, &["logout", &registry]).unwrap();
    docker.run_as(&logins, &["rmi", &mine]).unwrap();
    assert!(
        docker.run_as(&logins, &["pull", &mine]).is_err(),
        "an anonymous pull went through"
    );
    drop(tls);

    // A config.yml where the registry image reads one.
    let port = support::free_port();
    let yml = tmp.path().join("config.yml");
    readable(
        &yml,
        format!(
            "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Content-Type-Options: [nosniff]\nauth:\n  htpasswd:\n    realm: basic-realm\n    path: /auth/htpasswd\n"
        )
        .as_bytes(),
    );
    let configured = Container::run(
        &docker,
        &[
            "-v",
            &format!("{}:/etc/docker/registry/config.yml:ro", yml.display()),
            "-v",
            &format!("{}:/auth:ro", secrets.display()),
        ],
    );
    configured.await_healthy();
    let (code, head) = support::login::curl(&[&format!("http://127.0.0.1:{port}/v2/")]);
    assert_eq!(code, 401, "{head}");
    assert!(
        head.contains("basic-realm") && head.to_lowercase().contains("nosniff"),
        "{head}"
    );
    let (code, _) = support::login::curl(&[
        "-u",
        "alice:alice-pw",
        &format!("http://127.0.0.1:{port}/v2/"),
    ]);
    assert_eq!(code, 200);
}

#[cfg_attr(
    not(all(has_image, has_docker_registry, has_skopeo)),
    ignore = "skipped: the registry image in a Docker engine of the tests' own, docker-registry and skopeo are needed"
)]
#[tokio::test(flavor = "multi_thread")]
async fn the_image_serves_a_volume_distribution_wrote() {
    use std::os::unix::fs::chown;

    let tmp = tempfile::tempdir().unwrap();
    let host = std::env::var("REGISTRY_TEST_DOCKER_HOST")
        .expect("REGISTRY_TEST_DOCKER_HOST (scripts/dockerd.sh start DIR; . DIR/env)");
    let docker = Docker::attach(&host, &tmp.path().join("client"));
    let mut peer = support::distribution::Distribution::start(tmp.path());
    let image = support::images::seed(tmp.path(), &peer.addr, "team/app", "v1", 2).await;
    peer.stop();
    // What the registry image's root user left: a volume owned by root.
    let volume = tmp.path().join("distribution-data");
    let port = support::free_port();
    let args = [
        "-v".to_owned(),
        format!("{}:/var/lib/registry", volume.display()),
        "-e".to_owned(),
        format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = Container::run(&docker, &args);
    until_blocking(
        "the refusal to start on a folder it may not write",
        Duration::from_secs(60),
        || refused.inspect("{{.State.Running}}") != "true",
    );
    let logs = docker.logs(&refused.name);
    assert!(logs.contains("chown -R 65532:65532"), "{logs}");
    drop(refused);
    // Given to the image's user, it is served as it is: the same digests.
    for entry in walkdir(&volume) {
        chown(&entry, Some(65532), Some(65532)).unwrap();
    }
    let served = Container::run(&docker, &args);
    served.await_healthy();
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(
        support::images::digest_at(&addr, "team/app", "v1"),
        Some(image.index.clone())
    );
    for child in &image.children {
        assert_eq!(
            support::images::digest_at(&addr, "team/app", child),
            Some(child.clone())
        );
    }
}

/// `dir` and everything under it.
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = vec![dir.to_owned()];
    let mut i = 0;
    while i < all.len() {
        if all[i].is_dir() && !all[i].is_symlink() {
            let children = std::fs::read_dir(&all[i]).unwrap();
            all.extend(children.map(|e| e.unwrap().path()));
        }
        i += 1;
    }
    all
}

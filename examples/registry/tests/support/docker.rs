//! The Docker engine (Debian's `docker.io`) for the tests: `dockerd` started without Docker's
//! network setup (no bridge, no iptables), with vfs storage and its data, exec root and socket
//! under a temporary folder, so that it runs beside anything else on the machine. It pulls,
//! pushes, builds `FROM scratch` images and runs containers with `--network host`.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `dockerd` of the test's own, stopped (with what it runs) when dropped; or an engine the test
/// only uses ([`Docker::attach`]).
pub struct Docker {
    child: Option<Child>,
    dir: PathBuf,
    /// `unix://…/docker.sock`, for `DOCKER_HOST`.
    pub host: String,
}

/// The Docker client matching Debian's engine (another client on the `PATH` may be newer).
pub fn client() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

impl Docker {
    /// Starts `dockerd` under `dir`, treating `insecure` registries (`HOST:PORT`) as plain HTTP
    /// ones (dockerd treats 127.0.0.0/8 so anyway), and waits until it answers.
    pub fn start(dir: &Path, insecure: &[&str]) -> Docker {
        let dir = dir.to_owned();
        for sub in ["data", "exec"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let socket = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let mut cmd = Command::new("dockerd");
        cmd.args([
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=vfs",
        ])
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()));
        for registry in insecure {
            cmd.arg("--insecure-registry").arg(registry);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd (apt-get install docker.io)");
        let docker = Docker {
            child: Some(child),
            host: format!("unix://{}", socket.display()),
            dir,
        };
        assert!(
            super::wait::holds_within(Duration::from_secs(60), || docker.run(&["info"]).is_ok()),
            "dockerd never answered: {}",
            std::fs::read_to_string(docker.dir.join("dockerd.log")).unwrap_or_default()
        );
        docker
    }

    /// An engine already running at `host` (`unix://…`), used with client settings under `dir`.
    pub fn attach(host: &str, dir: &Path) -> Docker {
        std::fs::create_dir_all(dir).unwrap();
        Docker {
            child: None,
            dir: dir.to_owned(),
            host: host.to_owned(),
        }
    }

    /// Runs the client with `args` against this engine, its logins kept under `config` (a
    /// `DOCKER_CONFIG` folder): stdout, or stdout and stderr on failure.
    pub fn run_as(&self, config: &Path, args: &[&str]) -> Result<String, String> {
        self.command(config, args, None)
    }

    /// [`Docker::run_as`] with the test's default config folder.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        self.command(&self.dir.join("config"), args, None)
    }

    /// What a container wrote, standard output and error together (`docker logs` replays its
    /// standard error on its own).
    pub fn logs(&self, container: &str) -> String {
        let out = Command::new(client())
            .args(["logs", container])
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.join("config"))
            .output()
            .expect("run the docker client (apt-get install docker.io)");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// [`Docker::run_as`] feeding `input` on standard input (`login --password-stdin`).
    pub fn run_with_input(
        &self,
        config: &Path,
        args: &[&str],
        input: &str,
    ) -> Result<String, String> {
        self.command(config, args, Some(input))
    }

    fn command(&self, config: &Path, args: &[&str], input: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        std::fs::create_dir_all(config).unwrap();
        let mut child = Command::new(client())
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the docker client (apt-get install docker.io)");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        match out.status.success() {
            true => Ok(stdout),
            false => Err(format!(
                "docker {args:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }

    /// Builds `tag`, a `FROM scratch` image of one file holding `content`: no base image, no
    /// network, no container run.
    pub fn build_scratch(&self, tag: &str, content: &str) {
        let context = self
            .dir
            .join(format!("context-{}", tag.replace(['/', ':'], "-")));
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(context.join("content.txt"), content).unwrap();
        std::fs::write(
            context.join("Dockerfile"),
            "FROM scratch\nCOPY content.txt /content.txt\nCMD [\"/content.txt\"]\n",
        )
        .unwrap();
        self.run(&["build", "-q", "-t", tag, context.to_str().unwrap()])
            .unwrap();
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let Some(child) = &mut self.child else {
            return;
        };
        // SIGTERM lets dockerd stop its containerd and containers; SIGKILL if it lingers.
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let stopped = || matches!(child.try_wait(), Ok(Some(_)));
        if super::wait::holds_within(Duration::from_secs(20), stopped) {
            return;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

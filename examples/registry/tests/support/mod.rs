//! What the real-client tests share: the `registry` binary started on a free port, and OCI image
//! layouts built on disk for clients to push.
#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use std::io::{BufRead, BufReader, Write};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use registry_core::Digest;

mod api;
pub mod browser;
pub mod containerd;
pub mod distribution;
pub mod docker;
pub mod haproxy;
pub mod images;
mod layout;
pub mod login;
pub mod oidc;
pub mod pki;
pub mod raw;
pub mod sigstore;
pub mod slapd;
pub mod wait;
pub mod webhooks;

pub use api::{Api, TestImage};
pub use layout::{Layout, verify_layout_blobs};

/// The real `registry` binary, listening on 127.0.0.1 on a free port, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    pub data: PathBuf,
    /// Every line the server wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server storing under `data`, with extra flags.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let mut server = Server::start_with(&format!("fs:{}", data.display()), extra, &[]);
        server.data = data.to_owned();
        server
    }

    /// Starts the server on any `--storage`, with extra flags and environment variables.
    pub fn start_with(storage: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args = vec!["--listen", "127.0.0.1:0", "--storage", storage];
        args.extend_from_slice(extra);
        Server::start_args(&args, env)
    }

    /// Starts the server with the configuration file `config` (a TOML file or distribution's
    /// YAML) and `env`, and no other flag: the file (or a variable) must name a free port.
    pub fn start_with_config(config: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_args(&["--config", config.to_str().unwrap()], env)
    }

    /// Starts the server with exactly `args` and `env`.
    fn start_args(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_registry"))
            .args(args)
            .env("RUST_LOG", "warn,registry=info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the registry binary");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut early = Vec::new();
        let addr = loop {
            let Some(line) = lines.next() else {
                panic!("registry exited before listening: {}", early.join("\n"));
            };
            let line = line.unwrap();
            early.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                // Text or JSON logs: the URL ends at a space or a quote.
                let url: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                break url.split_once("://").unwrap().1.to_owned();
            }
        };
        let log = std::sync::Arc::new(std::sync::Mutex::new(early));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            addr,
            data: PathBuf::new(),
            log,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Server {
    /// Kills the server; when a test is failing, prints the end of what the server logged, so that
    /// a failure on CI shows the server's side of it.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let tail = &log[log.len().saturating_sub(60)..];
            eprintln!("the registry at {} logged:\n{}", self.addr, tail.join("\n"));
        }
    }
}

/// A deterministic pseudo-random byte generator (xorshift), so layers do not compress away.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs skopeo with its own blob-info cache (bind-mounted under a private mount namespace when
/// the machine allows it), so that no other run's cache makes it skip or mount blobs.
pub fn skopeo(cache: &Path, args: &[&str]) -> Result<String, String> {
    let isolated = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if isolated {
        std::fs::create_dir_all("/var/lib/containers/cache").unwrap();
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" /var/lib/containers/cache && shift && exec skopeo \"$@\"",
            "_",
        ]);
        c.arg(cache);
        c
    } else {
        Command::new("skopeo")
    };
    cmd.arg("--insecure-policy").args(args);
    cmd.env("REGISTRY_AUTH_FILE", cache.join("auth.json"));
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run skopeo (apt-get install skopeo): {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "skopeo {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Server {
    /// Kills the server with SIGKILL and waits for it to die.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs podman with the vfs driver, its storage and auth file under `root` (podman works so on
/// machines without overlay or systemd).
pub fn podman(root: &Path, args: &[&str]) -> std::process::Output {
    let auth = root.join("podman-auth.json");
    if !auth.exists() {
        std::fs::write(&auth, r#"{"auths":{}}"#).unwrap();
    }
    Command::new("podman")
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--root",
        ])
        .arg(root.join("podman-root"))
        .arg("--runroot")
        .arg(root.join("podman-runroot"))
        .args(args)
        .env("REGISTRY_AUTH_FILE", auth)
        .output()
        .unwrap_or_else(|e| panic!("cannot run podman (apt-get install podman): {e}"))
}

/// Pushes `size` bytes of noise to `repo` as one chunked-transfer `PATCH` streamed from curl's
/// stdin (the server never sees a length), then the digest on `PUT`; returns the digest.
pub fn push_streamed(base: &str, repo: &str, size: usize, seed: u64) -> Digest {
    const CHUNK: usize = 1 << 20;
    let out = Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null", "-D", "-", "-X", "POST"])
        .arg(format!("{base}/v2/{repo}/blobs/uploads/"))
        .output()
        .unwrap();
    let headers = String::from_utf8(out.stdout).unwrap();
    let location = headers
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no location in {headers}"));
    let mut patch = Command::new("curl")
        .args([
            "-sS",
            "-f",
            "-o",
            "/dev/null",
            "-X",
            "PATCH",
            "-H",
            "Expect:",
            "-T",
            "-",
        ])
        .arg(format!("{base}{location}"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = patch.stdin.take().unwrap();
    let mut block = noise(seed, CHUNK);
    let mut digester = registry_core::Digester::new(registry_core::Algorithm::Sha256);
    for i in 0..size / CHUNK {
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        digester.update(&block);
        stdin.write_all(&block).unwrap();
    }
    drop(stdin);
    assert!(patch.wait().unwrap().success(), "PATCH failed");
    let digest = digester.finish();
    let done = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .arg(format!("{base}{location}?digest={digest}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&done.stdout), "201", "PUT failed");
    digest
}

/// Pushes with skopeo, to the registry at `addr`, an image of three layers of `layer_size` bytes
/// (chosen against the backend's part size) and one of two small layers, then pulls both back
/// into layouts under `dir` and checks every blob.
pub fn skopeo_round_trip(addr: &str, dir: &Path, layer_size: usize) {
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("auth.json"), r#"{"auths":{}}"#).unwrap();
    let mut layout = Layout::new(&dir.join("src"));
    let image = layout.image(7, 3, layer_size, "amd64");
    layout.tag("v1", image);
    let small = layout.image(8, 2, 1000, "arm64");
    layout.tag("small", small);
    let repo = format!("docker://{addr}/team/app");
    for tag in ["v1", "small"] {
        let src = format!("oci:{}:{tag}", layout.dir.display());
        let args = ["copy", "-q", "--dest-tls-verify=false", &src];
        skopeo(&cache, &[&args[..], &[&format!("{repo}:{tag}")]].concat()).unwrap();
        let out = dir.join(format!("out-{tag}"));
        let dest = format!("oci:{}:{tag}", out.display());
        let args = ["copy", "-q", "--src-tls-verify=false"];
        skopeo(
            &cache,
            &[&args[..], &[&format!("{repo}:{tag}"), &dest]].concat(),
        )
        .unwrap();
        assert!(verify_layout_blobs(&out) >= 3, "pulled image lacks blobs");
    }
}

/// A loopback port free now (bound, then released), for a service the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

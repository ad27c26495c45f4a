//! containerd (Debian's `containerd` and its `ctr` client) for the tests: a daemon with its own
//! root, state and socket under a temporary folder (the CRI plugin off), stopped when dropped.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A containerd of the test's own.
pub struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Containerd {
    /// Starts containerd under `dir` and waits until `ctr` reaches it.
    pub fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = {:?}\n[debug]\n  level = \"warn\"\n",
                dir.join("root").display().to_string(),
                dir.join("state").display().to_string(),
                socket.display().to_string(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd (apt-get install containerd)");
        let daemon = Containerd { child, socket };
        super::wait::until_blocking("containerd answering", Duration::from_secs(30), || {
            daemon.ctr(&["version"]).is_ok()
        });
        daemon
    }

    /// Runs `ctr` with `args` against this daemon: stdout, or stdout and stderr on failure.
    pub fn ctr(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run ctr (apt-get install containerd)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        match out.status.success() {
            true => Ok(stdout),
            false => Err(format!(
                "ctr {args:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Distribution 2.8.2 (Debian's `docker-registry`), the peer registry, as an upstream or a
//! target in tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// Distribution on a loopback port, open, deletes enabled, storing under a folder; killed when
/// dropped.
pub struct Distribution {
    child: Option<Child>,
    pub addr: String,
    config: PathBuf,
}

impl Distribution {
    /// Starts it on a free port, storing under `dir`.
    pub fn start(dir: &Path) -> Distribution {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("distribution.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.join("distribution-data").display()
            ),
        )
        .unwrap();
        let mut peer = Distribution {
            child: None,
            addr: format!("127.0.0.1:{port}"),
            config,
        };
        peer.resume();
        peer
    }

    /// Kills it; [`Distribution::resume`] starts it again on the same port and data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again), and waits until it accepts connections.
    pub fn resume(&mut self) {
        self.stop();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        self.child = Some(child);
        super::wait::until_blocking("docker-registry listening", Duration::from_secs(20), || {
            std::net::TcpStream::connect(&self.addr).is_ok()
        });
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
    }
}

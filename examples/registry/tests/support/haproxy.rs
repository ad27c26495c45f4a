//! HAProxy (Debian's `haproxy`) in front of registries, as teams run replicas: a TCP frontend
//! that sends the PROXY protocol (v2) header, and an HTTP frontend that adds
//! `X-Forwarded-For`; each on a free port, stopped when dropped.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running HAProxy.
pub struct Haproxy {
    child: Child,
    /// The TCP frontend with the PROXY protocol, to `proxied`.
    pub proxy_protocol: String,
    /// The HTTP frontend with `X-Forwarded-For`, to `forwarded`.
    pub forwarded_for: String,
}

impl Haproxy {
    /// Starts HAProxy under `dir` in front of `proxied` (PROXY protocol v2) and `forwarded`
    /// (`X-Forwarded-For`), both `HOST:PORT`.
    pub fn start(dir: &Path, proxied: &str, forwarded: &str) -> Haproxy {
        let (pp, xff) = (super::free_port(), super::free_port());
        let config = dir.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "defaults\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
                 frontend pp\n  mode tcp\n  bind 127.0.0.1:{pp}\n  default_backend pp\n\
                 backend pp\n  mode tcp\n  server r1 {proxied} send-proxy-v2\n\
                 frontend xff\n  mode http\n  bind 127.0.0.1:{xff}\n  option forwardfor\n  default_backend xff\n\
                 backend xff\n  mode http\n  server r2 {forwarded}\n"
            ),
        )
        .unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start haproxy (apt-get install haproxy)");
        super::wait::until_blocking("haproxy listening", Duration::from_secs(20), || {
            [pp, xff]
                .iter()
                .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
        });
        Haproxy {
            child,
            proxy_protocol: format!("127.0.0.1:{pp}"),
            forwarded_for: format!("127.0.0.1:{xff}"),
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

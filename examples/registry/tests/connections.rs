//! Connections that misbehave, against the real binary: silent sockets (plain, inside the HTTP/2
//! preface, after a TLS handshake), idle HTTP/2 connections that answer pings, clients that stop
//! reading, one address opening too many, uploads that trickle a byte at a time. None of them may
//! lock other clients out, and each goes in its time.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use registry_core::Digest;
use support::Server;
use support::raw::{connect, read_reply, request, start_upload};
use support::wait::until_blocking;

/// The binary with these configuration lines.
fn start(dir: &std::path::Path, toml: &str, extra: &[&str]) -> Server {
    let config = dir.join("config.toml");
    std::fs::write(&config, toml).unwrap();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&dir.join("data"), &args)
}

/// True once the server closed `s` (end of stream, or reset) within `within`; bytes it sent
/// before are read and dropped.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// A GET on a new connection must be answered, even while other connections hold every slot
/// (the reply's read times out after 20 s).
fn served(server: &Server, path: &str) -> u16 {
    request(server, "GET", path, &[], b"").status
}

#[test]
fn silent_and_half_open_connections_do_not_lock_others_out() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(
        tmp.path(),
        "max_connections = 3\nmax_connections_per_address = 0\nheader_read_timeout_secs = 1\n",
        &[],
    );
    let mut silent = connect(&server);
    let mut in_preface = connect(&server);
    in_preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    let mut after_preface = connect(&server);
    after_preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    assert_eq!(served(&server, "/v2/"), 200);
    for (what, s) in [
        ("a silent socket", &mut silent),
        (
            "a socket stopped inside the HTTP/2 preface",
            &mut in_preface,
        ),
        (
            "an HTTP/2 connection that never sends a frame",
            &mut after_preface,
        ),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(15)),
            "{what} stays open"
        );
    }
}

/// An `openssl s_client` that completes its handshake and then says nothing.
fn silent_tls_client(addr: &str, ca: &std::path::Path) -> Child {
    let mut child = Command::new("openssl")
        .args(["s_client", "-brief", "-connect", addr, "-CAfile"])
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("s_client ended before its handshake")
            .unwrap();
        if line.contains("CONNECTION ESTABLISHED") {
            break;
        }
    }
    child
}

#[cfg_attr(
    not(all(has_openssl, has_curl)),
    ignore = "skipped: openssl and curl are not installed (apt-get install openssl; apt-get install curl)"
)]
#[test]
fn silence_after_a_tls_handshake_does_not_lock_others_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, cert, key) = support::pki::test_pki(tmp.path());
    let server = start(
        tmp.path(),
        "max_connections = 2\nmax_connections_per_address = 0\nheader_read_timeout_secs = 1\n",
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let ca = certs.join("ca.crt");
    let mut silent: Vec<Child> = (0..2)
        .map(|_| silent_tls_client(&server.addr, &ca))
        .collect();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(&ca)
        .arg(format!("https://{}/v2/", server.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    until_blocking(
        "every silent TLS connection closed",
        Duration::from_secs(15),
        || {
            silent
                .iter_mut()
                .all(|child| child.try_wait().unwrap().is_some())
        },
    );
}

#[tokio::test]
async fn idle_http2_connections_are_closed_whatever_pings_they_answer() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), "idle_timeout_secs = 1\n", &[]);
    let stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    // The client pings every 200 ms and answers the server's pings: the connection is alive,
    // but no request is in flight.
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(200))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{}/v2/", server.addr))
        .body(Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), conn).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection stays open");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), "header_read_timeout_secs = 1\n", &[]);
    let mut s = connect(&server);
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut s).status, 200);
    assert!(
        closed_within(&mut s, Duration::from_secs(15)),
        "an idle keep-alive connection stays open"
    );
}

#[test]
fn one_address_cannot_take_every_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), "max_connections_per_address = 2\n", &[]);
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&server)).collect();
    // Connections are counted once accepted: the next one is closed at once.
    let mut over = connect(&server);
    assert!(
        closed_within(&mut over, Duration::from_secs(10)),
        "a third connection from one address was kept"
    );
    drop(held);
    // The server may not have seen the first two close yet.
    until_blocking("the address served again", Duration::from_secs(10), || {
        let mut s = connect(&server);
        s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        let answered = s.read_exact(&mut head).is_ok();
        if answered {
            assert_eq!(&head[9..12], b"200");
        }
        answered
    });
}

#[test]
fn a_client_that_stops_reading_frees_its_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(
        tmp.path(),
        "max_connections = 1\nmax_connections_per_address = 0\nidle_timeout_secs = 1\n",
        &[],
    );
    let blob = support::noise(7, 32 << 20);
    let d = Digest::of(&blob);
    let r = request(
        &server,
        "POST",
        &format!("/v2/big/blobs/uploads/?digest={d}"),
        &[],
        &blob,
    );
    assert_eq!(r.status, 201);
    let mut reader = connect(&server);
    reader
        .write_all(format!("GET /v2/big/blobs/{d} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut first = [0u8; 12];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(&first[9..12], b"200");
    // It reads no more; the next client waits for the only slot, which the stall frees.
    assert_eq!(served(&server, "/v2/"), 200);
    drop(reader);
}

#[test]
fn trickling_uploads_hold_no_thread() {
    const TRICKLES: usize = 600;
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), "max_connections_per_address = 0\n", &[]);
    let locations: Vec<String> = (0..TRICKLES)
        .map(|i| start_upload(&server, &format!("trickle/{}", i % 7)))
        .collect();
    let mut trickles: Vec<TcpStream> = locations
        .iter()
        .map(|loc| {
            let mut s = connect(&server);
            s.write_all(
                format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nx")
                    .as_bytes(),
            )
            .unwrap();
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let trickling = std::thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(Ordering::Relaxed) {
                for s in &mut trickles {
                    let _ = s.write_all(b"x");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    });
    // Every PATCH is in the handler, its first byte received.
    until_blocking("every PATCH in flight", Duration::from_secs(60), || {
        let metrics = request(&server, "GET", "/metrics", &[], b"");
        let text = String::from_utf8_lossy(&metrics.body);
        let in_flight = text
            .lines()
            .find_map(|l| l.strip_prefix("registry_uploads_in_flight "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        in_flight >= TRICKLES as f64
    });
    // Another client pushes: a monolithic blob, a chunked one, then pulls.
    let blob = support::noise(3, 1 << 20);
    let d = Digest::of(&blob);
    let started = Instant::now();
    let put = request(
        &server,
        "POST",
        &format!("/v2/other/blobs/uploads/?digest={d}"),
        &[],
        &blob,
    );
    assert_eq!(put.status, 201);
    let loc = start_upload(&server, "other");
    let patch = request(&server, "PATCH", &loc, &[], b"chunk");
    assert_eq!(patch.status, 202);
    let chunk = Digest::of(b"chunk");
    let done = request(&server, "PUT", &format!("{loc}?digest={chunk}"), &[], b"");
    assert_eq!(done.status, 201);
    assert_eq!(served(&server, &format!("/v2/other/blobs/{d}")), 200);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    trickling.join().unwrap();
    eprintln!("with {TRICKLES} trickling PATCHes, a push took {took:?}");
}

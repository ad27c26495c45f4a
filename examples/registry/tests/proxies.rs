//! The real binary behind HAProxy, as replicas run behind a load balancer: with
//! `trusted_proxies`, the PROXY protocol (a TCP frontend) and `X-Forwarded-For` (an HTTP
//! frontend) name each client, so that one client's failed logins lock out that client only, the
//! per-address connection cap counts clients (not the proxy), and the audit trail and request
//! logs name the client. Clients come from several loopback addresses (127.0.0.2, .3, …).
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use support::Server;
use support::haproxy::Haproxy;
use support::login::{await_audit, curl, htpasswd_of};

/// A registry trusting HAProxy on 127.0.0.1, with `extra` keys, logging to `audit`.
fn start(dir: &Path, extra: &str) -> Server {
    let users = htpasswd_of(dir, &[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "htpasswd = \"{}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nmax_connections_per_address = 2\n{extra}\n\
             [throttle]\nmax_failures = 2\ninitial_lockout_secs = 60\n[audit]\npath = \"{}\"\n",
            users.display(),
            dir.join("audit.jsonl").display()
        ),
    )
    .unwrap();
    Server::start(&dir.join("data"), &["--config", file.to_str().unwrap()])
}

/// A login at `/v2/` through `front` from the client address `from`: the status.
fn login(front: &str, from: &str, user: &str, password: &str) -> u16 {
    curl(&[
        "--interface",
        from,
        "-u",
        &format!("{user}:{password}"),
        &format!("http://{front}/v2/"),
    ])
    .0
}

/// One client's failed logins lock that client (and that user) only.
fn throttled_per_client(front: &str, audit: &Path) {
    for i in 0..2 {
        assert_eq!(
            login(front, "127.0.0.2", "alice", &format!("guess-{i}")),
            401
        );
    }
    assert_eq!(
        login(front, "127.0.0.2", "carol", "guess-2"),
        429,
        "the client is locked"
    );
    assert_eq!(
        login(front, "127.0.0.3", "bob", "bob-pw"),
        200,
        "another client behind the same proxy was locked out"
    );
    await_audit(audit, "the client's address", |text| {
        text.lines().any(|l| {
            l.contains("\"kind\":\"login_failed\"") && l.contains("\"client\":\"127.0.0.2\"")
        }) && text
            .lines()
            .any(|l| l.contains("\"kind\":\"login\"") && l.contains("\"client\":\"127.0.0.3\""))
    });
}

/// A TCP connection to `front` from `from`, saying nothing.
async fn connect_from(front: &str, from: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let front: SocketAddr = front.parse().unwrap();
    socket.connect(front).await.unwrap()
}

/// Whether the other side closed `stream` within `within`.
async fn closed(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[cfg_attr(
    not(all(has_haproxy, has_curl)),
    ignore = "skipped: haproxy and curl are not installed (apt-get install haproxy curl)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_each_client_is_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let (pp_dir, xff_dir) = (tmp.path().join("pp"), tmp.path().join("xff"));
    std::fs::create_dir_all(&pp_dir).unwrap();
    std::fs::create_dir_all(&xff_dir).unwrap();
    let proxied = start(&pp_dir, "proxy_protocol = true");
    let forwarded = start(&xff_dir, "");
    let haproxy = Haproxy::start(tmp.path(), &proxied.addr, &forwarded.addr);

    throttled_per_client(&haproxy.proxy_protocol, &pp_dir.join("audit.jsonl"));
    throttled_per_client(&haproxy.forwarded_for, &xff_dir.join("audit.jsonl"));
    // A client cannot forge its address with an X-Forwarded-For of its own: the proxy appends
    // the address it saw, which is read first, so the locked client stays locked.
    let forged = curl(&[
        "--interface",
        "127.0.0.2",
        "-H",
        "X-Forwarded-For: 192.0.2.99",
        "-u",
        "alice:guess-9",
        &format!("http://{}/v2/", haproxy.forwarded_for),
    ])
    .0;
    assert_eq!(forged, 429, "a prepended X-Forwarded-For freed the client");

    // The connection cap counts the client named by the PROXY header, not HAProxy. HAProxy
    // accepts all three at once and forwards them in parallel, so which one the registry sees
    // third is a race: exactly one of them is closed, whichever it is.
    let front = &haproxy.proxy_protocol;
    let (mut a, mut b, mut c) = (
        connect_from(front, "127.0.0.4").await,
        connect_from(front, "127.0.0.4").await,
        connect_from(front, "127.0.0.4").await,
    );
    let within = Duration::from_secs(10);
    let shut = tokio::join!(
        closed(&mut a, within),
        closed(&mut b, within),
        closed(&mut c, within)
    );
    assert_eq!(
        [shut.0, shut.1, shut.2].iter().filter(|c| **c).count(),
        1,
        "one client's three connections, closed: {shut:?}"
    );
    let mut other = connect_from(front, "127.0.0.5").await;
    assert!(
        !closed(&mut other, Duration::from_millis(500)).await,
        "another client was refused: the cap counted the proxy"
    );
    drop((a, b, c));
}

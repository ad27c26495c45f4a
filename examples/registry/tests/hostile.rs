//! Hostile HTTP input against the running `registry` binary, over raw TCP: each gets the spec's
//! error code and status, no 5xx, nothing stored, and the server keeps serving others.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use registry_core::Digest;
use support::Server;
use support::raw::{assert_alive, connect, read_reply, request, start_upload};

#[test]
fn bad_names_digests_and_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let long = format!("/v2/{}/tags/list", "a".repeat(256));
    for path in [
        "/v2/../tags/list",
        "/v2/a/../../tags/list",
        "/v2/%2e%2e/tags/list",
        "/v2/a/%2e%2e/b/tags/list",
        "/v2/UPPER/tags/list",
        "/v2/a//b/tags/list",
        "/v2/a/b//tags/list",
        long.as_str(),
        "/v2/a%00b/tags/list",
    ] {
        let r = request(&server, "GET", path, &[], b"");
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "NAME_INVALID"),
            "{path}"
        );
    }
    for d in [
        "sha256:xyz",
        "sha256:",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    ] {
        let r = request(&server, "GET", &format!("/v2/a/blobs/{d}"), &[], b"");
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "DIGEST_INVALID"),
            "{d}"
        );
        let r = request(
            &server,
            "POST",
            &format!("/v2/a/blobs/uploads/?digest={d}"),
            &[],
            b"x",
        );
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "DIGEST_INVALID"),
            "{d}"
        );
    }
    let data = b"range target";
    let d = Digest::of(data);
    assert_eq!(
        request(
            &server,
            "POST",
            &format!("/v2/a/blobs/uploads/?digest={d}"),
            &[],
            data
        )
        .status,
        201
    );
    let many = (0..2000)
        .map(|i| format!("{i}-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let many = format!("bytes={many}");
    for range in [
        "bytes=99999999999999999999999-",
        "bytes=-0",
        "bytes=18446744073709551615-",
        "bytes=5-1",
        "bytes=--1",
        "bytes=1-2-3",
        many.as_str(),
        "bytes=0-18446744073709551615",
    ] {
        let r = request(
            &server,
            "GET",
            &format!("/v2/a/blobs/{d}"),
            &[("Range", range)],
            b"",
        );
        assert!(matches!(r.status, 200 | 206 | 416), "{range}: {}", r.status);
        if r.status == 416 {
            assert_eq!(r.code(), "RANGE_INVALID");
        }
    }
    assert_alive(&server);
}

#[test]
fn manifests_malformed_nested_duplicated_and_oversized() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let ct = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        "{{\"schemaVersion\":2,\"annotations\":{}1{}}}",
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    for body in [
        "",
        "{",
        "null",
        "[]",
        "{\"schemaVersion\":2,\"schemaVersion\":2}",
        nested.as_str(),
        deep_object.as_str(),
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{},\"layers\":[]}",
        "\u{feff}{}",
        "{\"schemaVersion\":18446744073709551616}",
    ] {
        let r = request(&server, "PUT", "/v2/m/manifests/t", &[ct], body.as_bytes());
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "MANIFEST_INVALID"),
            "{:.60}",
            body
        );
    }
    // Announced too large: refused from the headers, without the body being sent.
    let mut s = connect(&server);
    s.write_all(b"PUT /v2/m/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1073741824\r\n\r\n{").unwrap();
    let started = Instant::now();
    let r = read_reply(&mut s);
    assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Too large, and sent whole before the client reads the answer (as Python's http.client
    // does): the client must get the 413, not a broken pipe.
    let mut s = connect(&server);
    let body = vec![b' '; 8 << 20];
    s.write_all(
        format!(
            "PUT /v2/m/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&body)
        .expect("the server stopped reading a refused manifest");
    let r = read_reply(&mut s);
    assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
    // Chunked and too large: refused once past the limit, the rest read and dropped.
    let mut s = connect(&server);
    s.write_all(b"PUT /v2/m/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, " ".repeat(1 << 20));
    for _ in 0..5 {
        s.write_all(chunk.as_bytes())
            .expect("the server stopped reading a refused manifest");
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let r = read_reply(&mut s);
    assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
    let r = request(&server, "GET", "/v2/m/tags/list", &[], b"");
    assert_eq!(
        r.code(),
        "NAME_UNKNOWN",
        "a refused manifest left something behind"
    );
    assert_alive(&server);
}

#[test]
fn upload_bodies_that_lie_about_their_length() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let loc = start_upload(&server, "u");
    // Content-Range announces 10 bytes, the body has 5.
    let r = request(
        &server,
        "PATCH",
        &loc,
        &[("Content-Range", "0-9")],
        b"12345",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "BLOB_UPLOAD_INVALID"));
    assert_eq!(
        request(&server, "GET", &loc, &[], b"")
            .header("range")
            .unwrap(),
        "0-0"
    );
    // Content-Length 100, 50 bytes sent, then the client gives up.
    let mut s = connect(&server);
    s.write_all(
        format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").as_bytes(),
    )
    .unwrap();
    s.write_all(&[b'x'; 50]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(
        request(&server, "GET", &loc, &[], b"")
            .header("range")
            .unwrap(),
        "0-0",
        "a short body was kept"
    );
    // A body longer than its Content-Length: only the announced bytes belong to the request, the
    // rest is a malformed next request that the server refuses.
    let mut s = connect(&server);
    s.write_all(format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcdEXTRA-BYTES-NOT-HTTP\r\n\r\n").as_bytes()).unwrap();
    let r = read_reply(&mut s);
    assert_eq!(r.status, 202);
    assert_eq!(r.header("range").unwrap(), "0-3");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    // Digest mismatch on the final PUT: nothing stored, the upload is gone.
    let wrong = Digest::of(b"something else");
    let r = request(
        &server,
        "PUT",
        &format!("{loc}?digest={wrong}"),
        &[],
        b"efgh",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        request(&server, "HEAD", &format!("/v2/u/blobs/{wrong}"), &[], b"").status,
        404
    );
    assert_eq!(
        request(
            &server,
            "HEAD",
            &format!("/v2/u/blobs/{}", Digest::of(b"abcdefgh")),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(request(&server, "GET", &loc, &[], b"").status, 404);
    assert_alive(&server);
}

#[test]
fn slow_clients_do_not_starve_others() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        "max_connections = 16\nheader_read_timeout_secs = 2\nbody_idle_timeout_secs = 2\n",
    )
    .unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    // Trickling headers on more connections than the server serves at once.
    let mut slow: Vec<TcpStream> = (0..32).map(|_| connect(&server)).collect();
    for s in &mut slow {
        let _ = s.write_all(b"GET /v2/ HTTP/1.1\r\nHo");
    }
    let started = Instant::now();
    assert_alive(&server);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "a normal client waited {waited:?}"
    );
    // The trickling connections were closed by the server.
    for s in &mut slow {
        let mut buf = [0u8; 256];
        let _ = s.write_all(b"st: x\r\n");
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(
            n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    // A body that stalls fails the request, and the upload stays where it was.
    let loc = start_upload(&server, "slow");
    let mut s = connect(&server);
    s.write_all(
        format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").as_bytes(),
    )
    .unwrap();
    // The server ends the request once its body has been idle for 2 s: an answer, or a close.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut answer = [0u8; 512];
    let n = s
        .read(&mut answer)
        .expect("no end to a stalled body within 60 s");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(n == 0 || !answer.starts_with("HTTP/1.1 2"), "{answer}");
    assert_eq!(
        request(&server, "GET", &loc, &[], b"")
            .header("range")
            .unwrap(),
        "0-0"
    );
    assert_alive(&server);
}

#[test]
fn a_symlink_in_the_store_does_not_let_a_name_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(data.join("repositories")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, data.join("repositories/evil")).unwrap();
    let server = Server::start(&data, &[]);
    let d = Digest::of(b"payload");
    let r = request(
        &server,
        "POST",
        &format!("/v2/evil/x/blobs/uploads/?digest={d}"),
        &[],
        b"payload",
    );
    assert_ne!(r.status, 201);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the store"
    );
    let r = request(&server, "GET", "/v2/_catalog", &[], b"");
    assert_eq!(r.status, 200);
    assert_alive(&server);
}

#[test]
fn read_only_flag_refuses_writes_and_serves_health() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let blob = b"stored before the maintenance window";
    let digest = registry_core::Digest::of(blob);
    let writable = Server::start(&data, &[]);
    let r = request(
        &writable,
        "POST",
        &format!("/v2/a/blobs/uploads/?digest={digest}"),
        &[],
        blob,
    );
    assert_eq!(r.status, 201);
    drop(writable);
    let before = files_under(&data);
    let server = Server::start(&data, &["--read-only"]);
    let path = format!("/v2/a/blobs/{digest}");
    assert_eq!(request(&server, "HEAD", &path, &[], b"").status, 200);
    assert_eq!(request(&server, "GET", &path, &[], b"").status, 200);
    assert_eq!(files_under(&data), before, "a read-only registry wrote");
    let r = request(&server, "POST", "/v2/a/blobs/uploads/", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (405, "UNSUPPORTED"));
    assert_eq!(
        request(&server, "GET", "/v2/_catalog", &[], b"").status,
        200
    );
    assert_eq!(request(&server, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(request(&server, "GET", "/readyz", &[], b"").status, 200);
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

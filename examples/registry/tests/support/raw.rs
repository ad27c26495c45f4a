//! Raw HTTP/1.1 over TCP, for tests that send what no well-behaved client would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Server;

/// One response: status, head and body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON: {:?} {}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        });
        v["errors"][0]["code"].as_str().unwrap().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Reads one response (headers, then a Content-Length body) from a stream.
pub fn read_reply(s: &mut TcpStream) -> Reply {
    read_reply_of(s, "GET")
}

/// Reads one response to a request of `method` (a HEAD response has no body).
pub fn read_reply_of(s: &mut TcpStream, method: &str) -> Reply {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let mut reply = Reply {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = match method {
        "HEAD" => 0,
        _ => reply
            .header("content-length")
            .map(|l| l.parse().unwrap())
            .unwrap_or(0),
    };
    reply.body = vec![0; len];
    s.read_exact(&mut reply.body).unwrap();
    reply
}

pub fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Sends a whole request on a new connection and reads the reply.
pub fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = connect(server);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_reply_of(&mut s, method)
}

pub fn start_upload(server: &Server, repo: &str) -> String {
    let r = request(
        server,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    r.header("location").unwrap()
}

pub fn assert_alive(server: &Server) {
    assert_eq!(
        request(server, "GET", "/v2/", &[], b"").status,
        200,
        "the server stopped serving"
    );
}

//! Memory stays flat whatever the blob size: a 1 GiB blob streamed through the real server (as a
//! chunked-transfer PATCH, then the digest on PUT) must not raise its peak RSS above 64 MiB.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use registry_core::{Algorithm, Digester};
use support::{Server, noise};

const GIB: usize = 1 << 30;
const CHUNK: usize = 1 << 20;

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {headers}"))
}

#[test]
fn one_gib_push_keeps_peak_rss_under_64_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let base = format!("http://{}", server.addr);

    let started = curl(&["-X", "POST", &format!("{base}/v2/big/blobs/uploads/")]);
    let location = header(&started, "location").to_owned();

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
    let mut block = noise(42, CHUNK);
    let mut digester = Digester::new(Algorithm::Sha256);
    for i in 0..GIB / CHUNK {
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        digester.update(&block);
        stdin.write_all(&block).unwrap();
    }
    drop(stdin);
    assert!(patch.wait().unwrap().success(), "PATCH failed");
    let digest = digester.finish();

    let done = curl(&["-X", "PUT", &format!("{base}{location}?digest={digest}")]);
    assert!(done.starts_with("HTTP/1.1 201"), "{done}");
    let head = curl(&["-I", &format!("{base}/v2/big/blobs/{digest}")]);
    assert_eq!(header(&head, "content-length"), GIB.to_string());

    let peak_mib = server.peak_rss_kib() / 1024;
    eprintln!("peak RSS of the server after a 1 GiB push: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB");
}

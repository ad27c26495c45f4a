//! Memory stays flat whatever the blob size: a 1 GiB blob streamed through the real server (as a
//! chunked-transfer PATCH, then the digest on PUT) must not raise its peak RSS above 64 MiB.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{Server, push_streamed};

const GIB: usize = 1 << 30;

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

#[cfg_attr(
    not(has_curl),
    ignore = "skipped: curl is not installed (apt-get install curl)"
)]
#[test]
fn one_gib_push_keeps_peak_rss_under_64_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let base = format!("http://{}", server.addr);
    let digest = push_streamed(&base, "big", GIB, 42);
    let head = curl(&["-I", &format!("{base}/v2/big/blobs/{digest}")]);
    assert_eq!(header(&head, "content-length"), GIB.to_string());

    let peak_mib = server.peak_rss_kib() / 1024;
    eprintln!("peak RSS of the server after a 1 GiB push: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB");
}

//! Logins for the tests that need them: an htpasswd file, curl, client auth files.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::Command;

/// The user of the htpasswd file [`htpasswd`] writes.
pub const USER: &str = "testuser";
/// Their password.
pub const PASS: &str = "testpass";

/// Writes an htpasswd file of [`USER`] under `dir`; its path.
pub fn htpasswd(dir: &Path) -> String {
    let path = dir.join("htpasswd");
    std::fs::write(
        &path,
        format!("{USER}:{}\n", bcrypt::hash(PASS, 5).unwrap()),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs curl with `args`; the status and the response headers.
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(0);
    (code, text)
}

/// A folder under `dir` holding an empty `auth.json`, for a client's logins.
pub fn auth_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let cache = dir.join(name);
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("auth.json"), r#"{"auths":{}}"#).unwrap();
    cache
}

/// Waits (ten seconds at most) until the audit log at `path`, written by the server's own
/// thread, satisfies `done`; returns its text.
pub fn await_audit(path: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let read = || std::fs::read_to_string(path).unwrap_or_default();
    let shown = super::wait::holds_within(std::time::Duration::from_secs(10), || done(&read()));
    let text = read();
    assert!(shown, "the audit log never showed {what}: {text}");
    text
}

/// Writes an htpasswd file of `users` (name, password) under `dir`; its path.
pub fn htpasswd_of(dir: &Path, users: &[(&str, &str)]) -> std::path::PathBuf {
    let path = dir.join("htpasswd");
    let text: String = users
        .iter()
        .map(|(user, password)| format!("{user}:{}\n", bcrypt::hash(password, 5).unwrap()))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

//! Credentials for `registry copy` from the files podman, skopeo and docker keep after a
//! `login`: `--authfile FILE`, else `$REGISTRY_AUTH_FILE`, else podman's
//! `${XDG_RUNTIME_DIR}/containers/auth.json` (`/run/containers/UID/auth.json` when that variable
//! is unset, as for root), else `~/.config/containers/auth.json`, else docker's
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. Each maps a host (`host:port`,
//! possibly with a scheme or a path) to `{"auth": base64("user:password")}`.

use std::path::{Path, PathBuf};

/// The files looked at, in order, when no `--authfile` is given.
fn candidates() -> Vec<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let mut files = Vec::new();
    if let Some(file) = var("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(file));
    }
    match var("XDG_RUNTIME_DIR") {
        Some(dir) => files.push(Path::new(&dir).join("containers/auth.json")),
        None => {
            // Where podman keeps it without XDG_RUNTIME_DIR (root: /run/containers/0).
            let uid = std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .unwrap_or(0);
            files.push(PathBuf::from(format!("/run/containers/{uid}/auth.json")));
        }
    }
    let home = var("HOME").map(PathBuf::from);
    match var("XDG_CONFIG_HOME") {
        Some(dir) => files.push(Path::new(&dir).join("containers/auth.json")),
        None => files.extend(home.iter().map(|h| h.join(".config/containers/auth.json"))),
    }
    match var("DOCKER_CONFIG") {
        Some(dir) => files.push(Path::new(&dir).join("config.json")),
        None => files.extend(home.iter().map(|h| h.join(".docker/config.json"))),
    }
    files
}

/// The user and password stored for `host`, if any file holds them.
pub fn credentials(
    host: &str,
    authfile: Option<&Path>,
) -> Result<Option<(String, String)>, String> {
    let files = match authfile {
        Some(file) => vec![file.to_owned()],
        None => candidates(),
    };
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && authfile.is_none() => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        let auths: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
        if let Some(found) = lookup(&auths, host) {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn lookup(file: &serde_json::Value, host: &str) -> Option<(String, String)> {
    let auths = file.get("auths")?.as_object()?;
    let key_host = |key: &str| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        key.split('/').next().unwrap_or("").to_owned()
    };
    let docker_hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
    let matches = |key: &str| {
        let key = key_host(key);
        key == host || (docker_hub.contains(&host) && docker_hub.contains(&key.as_str()))
    };
    auths
        .iter()
        .find(|(key, _)| matches(key))
        .and_then(|(_, entry)| {
            use base64::Engine;
            let encoded = entry.get("auth")?.as_str()?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            Some((user.to_owned(), password.to_owned()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_by_host() {
        let file = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "127.0.0.1:5000": {"auth": "YWxpY2U6cGFzcw=="},
        }});
        assert_eq!(
            lookup(&file, "127.0.0.1:5000"),
            Some(("alice".into(), "pass".into()))
        );
        assert_eq!(
            lookup(&file, "docker.io"),
            Some(("hub".into(), "secret".into()))
        );
        assert_eq!(lookup(&file, "127.0.0.1:5001"), None);
    }
}

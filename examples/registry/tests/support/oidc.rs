//! The OpenID provider of the OIDC tests (`tests/oidc/provider.mjs`, oauth2-mock-server under
//! node) on a free port, stopped when dropped, and tokens from it.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running provider.
pub struct Provider {
    child: Child,
    /// Its issuer URL.
    pub issuer: String,
}

impl Provider {
    /// Starts the provider and waits until it listens.
    pub fn start() -> Provider {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect(
                "start node (apt-get install nodejs; npm ci --prefix examples/registry/tests/oidc)",
            );
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let issuer = loop {
            let line = lines
                .next()
                .expect("the OpenID provider exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("listening ") {
                break url.trim().to_owned();
            }
        };
        Provider { child, issuer }
    }

    /// A token with `claims` (merged over the provider's own: iss, iat, exp, nbf), already
    /// expired when `expired`.
    pub fn token(&self, claims: serde_json::Value, expired: bool) -> String {
        let mut args = vec![
            "-sS".to_owned(),
            "-f".to_owned(),
            "-X".to_owned(),
            "POST".to_owned(),
            format!("{}/token", self.issuer),
            "-d".to_owned(),
            "grant_type=client_credentials".to_owned(),
            "--data-urlencode".to_owned(),
            format!("claims={claims}"),
        ];
        if expired {
            args.extend(["-d".to_owned(), "expired=true".to_owned()]);
        }
        let out = Command::new("curl").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

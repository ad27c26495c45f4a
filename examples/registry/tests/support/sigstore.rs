//! The sigstore clients of the tests (`tests/sigstore`: @sigstore/sign, @sigstore/oci,
//! @sigstore/mock under node), run as scripts.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs `node SCRIPT ARGS` in `tests/sigstore`: its stdout, or why it failed.
pub fn node(script: &str, args: &[&str]) -> Result<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigstore");
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("run node (npm ci --prefix examples/registry/tests/sigstore)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.success() {
        true => Ok(stdout),
        false => Err(format!(
            "node {script} {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Writes a new EC P-256 private key (PKCS#8 PEM) to `path`, and its public key (SPKI PEM)
/// beside it as `path.pub`.
pub fn key_pair(path: &Path) {
    let pair = rcgen::KeyPair::generate().unwrap();
    std::fs::write(path, pair.serialize_pem()).unwrap();
    std::fs::write(path.with_extension("pub"), pair.public_key_pem()).unwrap();
}

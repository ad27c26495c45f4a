//! For the tests: `cfg(has_moto)` when moto's server (an S3 imitation) is on the `PATH`, or under
//! `CI`. Tests against moto are ignored without it, with a reason that starts with `skipped:`;
//! under `CI` they run, and fail if it is missing.

fn main() {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rustc-check-cfg=cfg(has_moto)");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<_> = std::env::split_paths(&path).collect();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    if ci || dirs.iter().any(|d| d.join("moto_server").is_file()) {
        println!("cargo::rustc-cfg=has_moto");
    }
}

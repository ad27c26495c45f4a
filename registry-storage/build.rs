//! For the tests: `cfg(has_moto)`, `cfg(has_fake_gcs)` and `cfg(has_azurite)` when moto's server
//! (an S3 imitation), fake-gcs-server or Azurite's blob service is on the `PATH`, or under `CI`.
//! Tests against a missing one are ignored, with a reason that starts with `skipped:`; under
//! `CI` they run, and fail if it is missing.

/// The `cfg` set when each program is on the `PATH`.
const PROGRAMS: &[(&str, &str)] = &[
    ("has_moto", "moto_server"),
    ("has_fake_gcs", "fake-gcs-server"),
    ("has_azurite", "azurite-blob"),
];

fn main() {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<_> = std::env::split_paths(&path).collect();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    for (cfg, program) in PROGRAMS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if ci || dirs.iter().any(|d| d.join(program).is_file()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

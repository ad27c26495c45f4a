#!/usr/bin/env bash
# The README's test command: on a fresh Debian 12 machine with Rust stable, installs what the tests
# need (skopeo and curl, the real clients), then checks formatting and lints and runs every test.
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
cargo test --workspace --locked
cargo package --no-verify --locked --allow-dirty -p registry-core -p registry-storage -p registry-http >/dev/null
./scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
echo "scripts/test.sh: all checks passed"

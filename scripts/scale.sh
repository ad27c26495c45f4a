#!/usr/bin/env bash
# Stateless replicas measured: 1, 2 and 4 `registry` processes over one Ceph cluster behind
# HAProxy, 16 clients for a fixed time per count, then a run where one replica is SIGKILLed
# halfway; every acknowledged push is pulled back and checked (scripts/scale.py says how):
#   ./scripts/scale.sh [--seconds 30] [--clients 16] [--replicas 1,2,4] [--layer-kib 256]
# Installs HAProxy (and Ceph, through scripts/ceph.sh) when missing, builds the release binaries,
# and starts a Ceph cluster under a temporary folder unless the REGISTRY_TEST_CEPH_* variables of
# `scripts/ceph.sh start DIR` are set. About 4 minutes with the defaults. Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || {
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends haproxy >/dev/null
}
cargo build --release --locked -p registry-server -p registry-bench
if [ -z "${REGISTRY_TEST_CEPH_ENDPOINT:-}" ]; then
  ceph_dir="$(mktemp -d)/ceph"
  trap 'scripts/ceph.sh stop "$ceph_dir"; rm -rf "$(dirname "$ceph_dir")"' EXIT
  CEPH_PORT="${CEPH_PORT:-7650}" scripts/ceph.sh start "$ceph_dir"
  # shellcheck disable=SC1091
  . "$ceph_dir/env"
fi
python3 scripts/scale.py "$@"

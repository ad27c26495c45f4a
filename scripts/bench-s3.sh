#!/usr/bin/env bash
# 1 GiB push and pull through S3, ours against distribution 2.8's S3 driver and (pushes) boto3 in one run:
#   ./scripts/bench-s3.sh [--mib N] [--parts-in-flight N]
# Uses moto (started by the script) and, when REGISTRY_TEST_CEPH_* are set (source the env file
# of scripts/ceph.sh start DIR), Ceph radosgw too.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || {
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
}
command -v moto_server >/dev/null || python3 -m pip install -q 'moto[server]'
cargo build --release --locked -p registry-server -p registry-bench
exec python3 scripts/bench_s3.py "$@"

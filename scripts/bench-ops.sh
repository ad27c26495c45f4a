#!/usr/bin/env bash
# Operations benchmarks against distribution 2.8 (Debian's docker-registry), in one run: the
# pull-through cache (cold, warm and concurrent pulls with skopeo, upstream GETs) and garbage
# collection of the same content.
#   ./scripts/bench-ops.sh [--rounds N] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --locked -p registry-server -p registry-bench
exec python3 scripts/bench_ops.py "$@"

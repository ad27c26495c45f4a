#!/usr/bin/env bash
# Benchmarks our registry against distribution 2.8 (Debian's docker-registry) in one run:
#   ./scripts/bench.sh [--rounds N] [--quick]
# Installs docker-registry, skopeo and openssl when missing, builds release binaries, then runs
# scripts/bench.py, which prints every figure for both servers with the ratio ours/peer.
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
# BENCH_SCRIPT: another benchmark needing the same (scripts/bench-ops.sh).
exec python3 "scripts/${BENCH_SCRIPT:-bench.py}" "$@"

#!/usr/bin/env bash
# Operations benchmarks against distribution 2.8 (Debian's docker-registry), in one run: the
# pull-through cache (cold, warm and concurrent pulls with skopeo, upstream GETs) and garbage
# collection of the same content. Installs and builds what it needs as scripts/bench.sh does.
#   ./scripts/bench-ops.sh [--rounds N] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_SCRIPT=bench_ops.py exec ./scripts/bench.sh "$@"

#!/usr/bin/env bash
# What the catalog and tag lists cost with many repositories and one repository of many tags, on
# the filesystem and on S3 (moto):
#   ./scripts/bench-listing.sh [--repos N] [--tags N] [--against BIN]
# Builds the release binaries, then runs scripts/bench_listing.py (its docstring says what it
# measures). About two minutes with the defaults (20,000 of each).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p registry-server -p registry-bench
exec python3 scripts/bench_listing.py "$@"

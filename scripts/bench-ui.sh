#!/usr/bin/env bash
# What the web UI's first page costs with many repositories:
#   ./scripts/bench-ui.sh [REPOSITORIES]     (default 20000)
# Builds the release binaries, seeds a filesystem store through the library (each repository
# holds one manifest tagged v1), starts the registry on it, then times 20 GETs of `/` (the first
# page: 50 repositories with tag count, last push and size) and prints the median and the worst.
set -euo pipefail
cd "$(dirname "$0")/.."
repos="${1:-20000}"
cargo build --release --locked -p registry-server -p registry-bench
bin="${CARGO_TARGET_DIR:-target}/release"
store="$(mktemp -d)"
log="$(mktemp)"
server=""
trap '[ -n "$server" ] && kill "$server"; rm -rf "$store" "$log"' EXIT
"$bin/registry-bench" seed-listing --storage "fs:$store" --repos "$repos" --tags 1
"$bin/registry" --listen 127.0.0.1:0 --storage "fs:$store" 2>"$log" &
server=$!
for _ in $(seq 100); do
  grep -q "listening on" "$log" && break
  sleep 0.1
done
addr=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/.*http:\/\///')
curl -s -o /dev/null "http://$addr/"   # the first request warms the caches
for _ in $(seq 20); do
  curl -s -o /dev/null -w '%{time_total}\n' "http://$addr/"
done | sort -n | awk '{ t[NR] = $1 * 1000 } END { printf "first page of / with %s repositories: median %.1f ms, worst %.1f ms (20 requests)\n", "'"$repos"'", t[int((NR + 1) / 2)], t[NR] }'

#!/usr/bin/env bash
# What `registry usage` costs on a filesystem store of many blobs:
#   ./scripts/bench-usage.sh [BLOBS]        (default 100000)
# Builds the release binaries, seeds a store under a temporary folder through the library
# (images of a config, six layers of their own and three shared from a pool), then runs
# `registry usage --json` three times (the first with a cold page cache where the machine lets
# us drop it) and prints the wall time and peak memory of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
blobs="${1:-100000}"
cargo build --release --locked -p registry-server -p registry-bench
bin="${CARGO_TARGET_DIR:-target}/release"
store="$(mktemp -d)"
trap 'rm -rf "$store"' EXIT
"$bin/registry-bench" seed-usage --storage "fs:$store" --blobs "$blobs"
echo "store: $(find "$store/blobs" -name data | wc -l) blobs and manifests, $(du -sh "$store" | cut -f1)"
for run in 1 2 3; do
  if [ "$run" = 1 ]; then sync; (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null || true; fi
  /usr/bin/time -f "run $run: %e s wall, %M KiB peak RSS" \
    "$bin/registry" usage --json --storage "fs:$store" > "$store.json"
done
python3 - "$store.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["store"]
print(f"report: {s['repositories']} repositories, {s['digests']} digests, "
      f"{s['stored_bytes']} bytes stored, dedup ratio {s['dedup_ratio']:.2f}")
PY
rm -f "$store.json"

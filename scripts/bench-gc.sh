#!/usr/bin/env bash
# What garbage collection costs as a store grows, incremental against full, on the filesystem:
#   ./scripts/bench-gc.sh [BLOBS] [DELETES]      (defaults 12000 blobs, about 80,000 objects; 300)
# Seeds a store through the library (`registry-bench seed-usage`), runs `registry gc --full`
# once (the first collection of a store walks it anyway) and `registry gc` once (which settles
# the records the seeding pushes left, as a server's periodic collection would have), deletes
# DELETES manifests (`registry-bench delete-manifests`), copies the store, then prints the wall
# time and peak memory of `registry gc` (incremental: what the deletes recorded) on one copy, of
# `registry gc --full` on the other (the same removals after a walk of the store), and of
# `registry gc --full --dry-run` on the first (the audit, which must find nothing left to
# remove), with the grace period and tag history at zero so that the deletes' garbage goes at once. Run it at two sizes to see how each grows.
# Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
blobs="${1:-12000}"
deletes="${2:-300}"
cargo build --release --locked -p registry-server -p registry-bench
bin="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
store="$work/store"
export REGISTRY_GC_GRACE_SECS=0 REGISTRY_GC_HISTORY_DAYS=0

timed() { # LABEL COMMAND...: runs it, prints wall time and peak RSS, keeps its output
  local label=$1
  shift
  /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" "$@" >"$work/out" 2>"$work/err" ||
    { tail -5 "$work/err" >&2; echo "$label failed" >&2; exit 1; }
  tail -1 "$work/err"
}

"$bin/registry-bench" seed-usage --storage "fs:$store" --blobs "$blobs"
echo "store: $(find "$store" -type f | wc -l) objects, $(du -sh "$store" | cut -f1)"
timed "registry gc --full (first)" "$bin/registry" gc --full --storage "fs:$store"
timed "registry gc (settling the seeding's records)" "$bin/registry" gc --storage "fs:$store"
"$bin/registry-bench" delete-manifests --storage "fs:$store" --count "$deletes"
cp -a "$store" "$work/copy"
timed "registry gc (incremental)" "$bin/registry" gc --storage "fs:$store"
grep "^gc: " "$work/out" | head -2
timed "registry gc --full (same deletes, other copy)" "$bin/registry" gc --full --storage "fs:$work/copy"
grep "^gc: " "$work/out" | head -2
timed "registry gc --full --dry-run" "$bin/registry" gc --full --dry-run --storage "fs:$store"
grep "^gc: " "$work/out" | head -2

#!/usr/bin/env bash
# A large store measured: 100,000 repositories, one repository of 100,000 tags and 200,000 blobs
# on the filesystem, seeded through the library (`registry-bench seed-listing` and `seed-usage`).
# Prints the wall time and peak memory of `registry gc --full` (the first collection, which also
# settles the records the seeding's pushes left), of `registry gc` after --deletes N manifest
# deletes (incremental: reads what the deletes recorded) and of `registry gc --full --dry-run`
# then (which must find nothing), all with the grace period and tag history at zero; then of
# `registry scrub` and `registry usage`, and of the server's first `_catalog?n=100` and
# `tags/list?n=100` pages (cold page cache where the machine lets us drop it, then warm):
#   ./scripts/bench-large.sh [--repos N] [--tags N] [--blobs N] [--deletes N] [--keep DIR]
# About 20 minutes with the defaults; the store takes about 13 GB (a folder per blob and per
# link). Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
repos=100000 tags=100000 blobs=200000 deletes=1000 keep=""
while [ $# -gt 0 ]; do
  case $1 in
  --repos) repos=$2; shift 2 ;;
  --tags) tags=$2; shift 2 ;;
  --blobs) blobs=$2; shift 2 ;;
  --deletes) deletes=$2; shift 2 ;;
  --keep) keep=$2; shift 2 ;;
  *) echo "usage: $0 [--repos N] [--tags N] [--blobs N] [--deletes N] [--keep DIR]" >&2; exit 2 ;;
  esac
done
cargo build --release --locked -p registry-server -p registry-bench
bin="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
store="${keep:-$work/store}"

drop_caches() { sync; (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null || true; }
timed() { # LABEL COMMAND...: runs it, prints wall time and peak RSS
  local label=$1; shift
  drop_caches
  /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" "$@" >"$work/out" 2>"$work/err" ||
    { tail -5 "$work/err" >&2; echo "$label failed" >&2; }
  tail -1 "$work/err"
}

if [ ! -d "$store/blobs" ]; then
  started=$(date +%s)
  "$bin/registry-bench" seed-listing --storage "fs:$store" --repos "$repos" --tags "$tags"
  "$bin/registry-bench" seed-usage --storage "fs:$store" --blobs "$blobs"
  echo "seeded in $(( $(date +%s) - started )) s"
fi
echo "store: $(find "$store/blobs" -name data | wc -l) blobs and manifests, $(du -sh "$store" | cut -f1)"

export REGISTRY_GC_GRACE_SECS=0 REGISTRY_GC_HISTORY_DAYS=0
timed "registry gc --full" "$bin/registry" gc --full --storage "fs:$store"
grep -m1 "^gc: [0-9]" "$work/out" || tail -1 "$work/out"
"$bin/registry-bench" delete-manifests --storage "fs:$store" --count "$deletes"
timed "registry gc (incremental, after $deletes deletes)" "$bin/registry" gc --storage "fs:$store"
grep "^gc: [0-9i]" "$work/out" | head -2
timed "registry gc --full --dry-run" "$bin/registry" gc --full --dry-run --storage "fs:$store"
grep -m1 "^gc: [0-9]" "$work/out" || tail -1 "$work/out"
unset REGISTRY_GC_GRACE_SECS REGISTRY_GC_HISTORY_DAYS
timed "registry scrub" "$bin/registry" scrub --storage "fs:$store"
tail -1 "$work/out"
timed "registry usage" "$bin/registry" usage --json --storage "fs:$store"
python3 - "$work/out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["store"]
print(f"usage: {s['repositories']} repositories, {s['digests']} digests, {s['stored_bytes']} bytes stored")
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
drop_caches
"$bin/registry" --listen "127.0.0.1:$port" --storage "fs:$store" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
page() { # LABEL PATH: the first answer (cold), then the median of 20
  local label=$1 path=$2 first rest
  first=$(curl -sf -o "$work/page" -w '%{time_total}' "http://127.0.0.1:$port$path")
  rest=$(for _ in $(seq 20); do curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$path"; done | sort -n | sed -n 10p)
  echo "$label: cold $(python3 -c "print(f'{$first*1000:.1f}')") ms, then median $(python3 -c "print(f'{$rest*1000:.1f}')") ms ($(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d.get("repositories") or d.get("tags") or []))' "$work/page") entries)"
}
page "first _catalog?n=100" "/v2/_catalog?n=100"
page "first tags/list?n=100 of seed/tagged" "/v2/seed/tagged/tags/list?n=100"
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$server/status")"

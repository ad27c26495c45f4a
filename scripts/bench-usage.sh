#!/usr/bin/env bash
# What `registry usage` costs on a filesystem store of many blobs:
#   ./scripts/bench-usage.sh [BLOBS]        (default 100000)
# Builds the release binaries, seeds a store under a temporary folder through the library
# (images of a config, six layers of their own and three shared from a pool), then runs
# `registry usage --json` three times (the first with a cold page cache where the machine lets
# us drop it) and prints the wall time and peak memory of each run. Then serves the store and
# times the admin API: one repository's usage (read from that repository alone) and the whole
# store's (computed once, then served again for 10 s).
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

# The admin API over the same store, logged in as a user of an htpasswd file (no rules: every
# user may see everything).
users="$store.htpasswd"
python3 -c 'import bcrypt' 2>/dev/null || python3 -m pip install -q bcrypt 2>/dev/null ||
  python3 -m pip install -q --break-system-packages bcrypt
python3 -c 'import bcrypt; print("admin:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode())' > "$users"
log="$store.log"
"$bin/registry" --listen 127.0.0.1:0 --storage "fs:$store" --htpasswd "$users" 2> "$log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$store" "$store.htpasswd" "$log"' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
addr=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's|.*http://||')
time_of() { curl -s -o /dev/null -w '%{time_total}' -u admin:pw "http://$addr$1"; }
repo_times=$(for _ in $(seq 20); do time_of /admin/v1/usage/usage000/app0000; echo; done)
python3 - "$repo_times" <<'PY'
import statistics, sys
t = [float(x) * 1000 for x in sys.argv[1].split()]
print(f"admin API, one repository's usage: median {statistics.median(t):.1f} ms, max {max(t):.1f} ms (20 requests)")
PY
echo "admin API, the store's usage: first $(time_of /admin/v1/usage) s, again $(time_of /admin/v1/usage) s"

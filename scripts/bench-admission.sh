#!/usr/bin/env bash
# What admission rules cost manifest pushes:
#   ./scripts/bench-admission.sh [SECONDS] [ROUNDS]     (default 10 s, 3 rounds)
# Builds the release binaries, then, for each round, serves a fresh filesystem store under
# each of three configurations in turn (each round starting with another) (no rule; an [[immutable]] rule on other repositories;
# a [[quota]] over the pushers' own repositories) and has `registry-bench manifest-push` push
# new manifests from 16 clients, each into a repository of its own, for SECONDS. Prints each
# run's pushes per second, then the median of each configuration and its ratio to no rule.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
rounds="${2:-3}"
cargo build --release --locked -p registry-server -p registry-bench
bin="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/none.toml" <<'TOML'
TOML
cat > "$work/immutable.toml" <<'TOML'
[[immutable]]
repositories = ["release/*"]
tags = [".*"]
TOML
cat > "$work/quota.toml" <<'TOML'
[[quota]]
repositories = ["bench/*"]
max_bytes = "100GB"
TOML

run() { # configuration, round: prints pushes per second
  local store="$work/store-$1-$2" log="$work/log-$1-$2"
  "$bin/registry" --listen 127.0.0.1:0 --storage "fs:$store" --config "$work/$1.toml" 2> "$log" &
  server=$!
  for _ in $(seq 300); do grep -qs 'listening on' "$log" && break; sleep 0.1; done
  local addr
  addr=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's|.*http://||')
  "$bin/registry-bench" --url "http://$addr" --json manifest-push --concurrency 16 \
    --seconds "$seconds" --prefix bench/push |
    python3 -c 'import json, sys; f = json.loads(sys.stdin.readline()); print("%.0f %.1f %.1f" % (f["value"], f["p50_ms"], f["p99_ms"]))'
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  rm -rf "$store"
}

results="$work/results"
configs=(none immutable quota)
for round in $(seq "$rounds"); do
  # Each round starts with another configuration, so that no one always runs first.
  for k in 0 1 2; do
    config=${configs[$(((round + k) % 3))]}
    read -r rate p50 p99 < <(run "$config" "$round")
    echo "round $round, $config: $rate pushes/s (p50 $p50 ms, p99 $p99 ms)"
    echo "$config $rate" >> "$results"
  done
done
python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    config, rate = line.split()
    runs.setdefault(config, []).append(float(rate))
base = statistics.median(runs["none"])
for config in ("none", "immutable", "quota"):
    r = runs[config]
    m = statistics.median(r)
    print(f"{config:9} median {m:7.0f} pushes/s   {m / base:.2f}x no rule   "
          f"(runs {min(r):.0f} to {max(r):.0f})")
PY

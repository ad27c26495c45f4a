#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for SECONDS (default 10) from its seeds.
#   ./scripts/fuzz.sh            all targets, 10 s each (what CI runs)
#   ./scripts/fuzz.sh 3600 route one target for an hour
# Needs cargo-fuzz (installed here when missing) and, on stable Rust, RUSTC_BOOTSTRAP=1 (set here).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-10}
shift || true
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "fuzz: $t for ${seconds}s"
  cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E '^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY' || true
  test -z "$(ls -A "artifacts/$t" 2>/dev/null)" || { echo "fuzz: $t found a crash in fuzz/artifacts/$t"; exit 1; }
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"

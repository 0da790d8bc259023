#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: unit and property
# tests, DPDK tests (each in its own process), golden packet tests through
# the real binary, end-to-end tests in network namespaces, and a smoke run
# of the benchmark harness. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
start=$(date +%s)
# The end-to-end tests run the rvsd, rvs-testkit and rvs-demo binaries.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast
echo "test.sh: all tests passed in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# Runs the benchmark harness described in BENCHMARKS.md: builds the release
# binaries, reserves 2048 x 2 MiB hugepages for the run (the previous count
# is restored on exit), and runs rvs-bench with the arguments given, e.g.
#   bash scripts/bench.sh                      # everything (~10 minutes)
#   bash scripts/bench.sh --workloads est --modes dr
#   bash scripts/bench.sh --quick              # the CI smoke run
# Run as root on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --bins
hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
want=${RVS_BENCH_HUGEPAGES:-2048}
if [ -w "$hp" ]; then
    old=$(cat "$hp")
    if [ "$old" -lt "$want" ]; then
        echo "$want" > "$hp" || true
        trap 'echo "$old" > "$hp"' EXIT
    fi
fi
target/release/rvs-bench "$@"

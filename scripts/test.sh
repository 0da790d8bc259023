#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: unit and property
# tests, DPDK tests (each in its own process), golden packet tests through
# the real binary, end-to-end tests in network namespaces, and a smoke run
# of the benchmark harness, then the fuzz targets (scripts/fuzz.sh). Run as
# root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
start=$(date +%s)
# Habits enforced: formatting, every clippy warning an error, and the layer
# boundaries - the forwarding core builds without DPDK, test frames stay in
# tests.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo tree -p rvs-core -e normal,build --prefix none | grep -i dpdk; then
    echo "test.sh: rvs-core must not depend on DPDK (see above)" >&2
    exit 1
fi
# Test frames are for tests: nothing rvsd or rvsadm ships builds them.
if cargo tree -p mgmt -e normal,build --prefix none | grep -i testpkt; then
    echo "test.sh: rvs-testpkt must stay a test-only crate (see above)" >&2
    exit 1
fi
# The end-to-end tests run the rvsd, rvs-testkit and rvs-demo binaries;
# the instruction-count scripts' test runs the fwdloop example.
cargo build --workspace --bins
cargo build -p rvs-core --example fwdloop
cargo nextest run --workspace --no-fail-fast
# Doc tests (nextest does not run them): the wrapper's compile_fail
# examples prove its misuses do not compile.
cargo test --workspace --doc
# Coverage-guided fuzzing of the forwarder, the wire, configuration,
# control-protocol and remote-answer parsers, a bounded time per target.
bash scripts/fuzz.sh "${RVS_FUZZ_SECONDS:-60}"
echo "test.sh: all tests passed in $(( $(date +%s) - start )) s"

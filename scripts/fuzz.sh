#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo fuzz (libFuzzer, nightly): every
# target of testbed/fuzz runs for SECONDS (default 60) from its committed
# seed corpus (testbed/fuzz/corpus/TARGET, made from the golden tests by
# testbed/fuzz/make_corpus.py); a crash, a panic or a leak fails the run
# and leaves the input in testbed/fuzz/artifacts/TARGET/. Run by test.sh.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
secs=${1:-60}
shift || true
targets=${*:-forwarder wire config remote control}
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo +nightly fuzz build --fuzz-dir testbed/fuzz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $targets; do
    mkdir -p "$work/$t"
    log="$work/$t.log"
    # New inputs go to the scratch directory; the committed seeds are read.
    if ! cargo +nightly fuzz run --fuzz-dir testbed/fuzz "$t" "$work/$t" "testbed/fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -60 "$log" >&2
        echo "fuzz.sh: target $t failed (input in testbed/fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
    echo "fuzz.sh: $t: $runs executions in ${secs} s, $cov, no crash"
done

#!/usr/bin/env bash
# Instructions per packet of the forwarder, by mode, counted by callgrind
# (deterministic: the same binary and inputs give the same count whatever
# else the machine does). The fwdloop example is run with two burst counts
# and the difference is divided by the extra packets, so set-up cancels out.
#   bash scripts/ipp.sh [FWDLOOP_BINARY] [MODES...]
#   IPP_V6=1 bash scripts/ipp.sh ...    the same over IPv6
# Default binary: target/release/examples/fwdloop (built here first). Two
# workloads per mode: `est` (1024 established flows, the fast path) and
# `syn` (every packet a SYN from a new source: admission, scheduling and
# session creation); each also as a NIC with receive checksum offload
# delivers them (`nic`: the IPv4 header and TCP checksums verified, so rvs
# sums neither; net_pcap, the benchmarks' port, verifies nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
    cargo build --release -p rvs-core --example fwdloop >&2
    bin=target/release/examples/fwdloop
fi
shift || true
modes=${*:-nat fullnat dr tunnel}
family=""
[ -n "${IPP_V6:-}" ] && family=v6
flows=1024
small=2000
big=6000
ir() {
    local out
    out=$(mktemp)
    # shellcheck disable=SC2086 # the flags are words on purpose
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$flows" "$2" $3 $family >/dev/null 2>&1
    awk '/^summary:/ {print $2}' "$out"
    rm -f "$out"
}
per_packet() {
    local a b
    a=$(ir "$1" "$small" "$2")
    b=$(ir "$1" "$big" "$2")
    echo $(( (b - a) / ((big - small) * 32) ))
}
printf '| mode | est | syn | est, NIC-checked | syn, NIC-checked |\n|------|------:|------:|------:|------:|\n'
for m in $modes; do
    printf '| %s | %s | %s | %s | %s |\n' "$m" "$(per_packet "$m" "")" "$(per_packet "$m" syn)" \
        "$(per_packet "$m" nic)" "$(per_packet "$m" "syn nic")"
done

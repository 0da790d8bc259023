#!/usr/bin/env bash
# Before/after on a noisy machine: runs rvs-bench RUNS times against the
# rvsd in folder A and the rvsd in folder B, alternating (A B A B ...), one
# round each (testpmd's baseline measured in every run), and prints every
# run's rows, then per workload, mode and folder the median rvs Mpps and the
# median ratio to testpmd.
#   bash scripts/bench-ab.sh A_DIR B_DIR RUNS [rvs-bench arguments]
#   e.g. bash scripts/bench-ab.sh /srv/rvs-before target/release 3 \
#            --workloads est,syn --modes nat,fullnat,dr,tunnel
# A folder holds the binaries of one build (rvsd, rvsadm, rvs-pktgen: copy
# target/release/ of each commit). The harness itself is $RVS_BENCH (default
# target/release/rvs-bench of this checkout), the same for both. Run as root
# on an otherwise idle machine, hugepages reserved (scripts/bench.sh does it).
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
a=$1 b=$2 runs=$3
shift 3
cd "$(dirname "$0")/.."
bench=${RVS_BENCH:-target/release/rvs-bench}
for d in "$a" "$b"; do
    [ -x "$d/rvsd" ] || { echo "bench-ab: no rvsd in $d" >&2; exit 2; }
done
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for r in $(seq 1 "$runs"); do
    for d in "$a" "$b"; do
        echo "== run $r: $d"
        out=$(RVS_BIN_DIR=$d "$bench" --rounds 1 "$@")
        # Result rows: | workload | mode | rvs Mpps | testpmd Mpps | ...
        printf '%s\n' "$out" | grep -E '^\| (est|SYN|mix|memif)' | tee /dev/stderr |
            awk -F'|' -v d="$d" '{w=$2; m=$3; gsub(/^ +| +$/, "", w); gsub(/ /, "", m); print w "\t" m "\t" d "\t" $4+0 "\t" $5+0}' >>"$rows"
    done
done 2>&1
echo
echo "median of $runs runs each (rvs Mpps; ratio to the same run's testpmd io):"
median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
cut -f1-3 "$rows" | sort -u | while IFS=$'\t' read -r w m d; do
    sel=$(awk -F'\t' -v w="$w" -v m="$m" -v d="$d" '$1 == w && $2 == m && $3 == d' "$rows")
    mpps=$(printf '%s\n' "$sel" | cut -f4 | median)
    ratio=$(printf '%s\n' "$sel" | awk -F'\t' '{print ($5 > 0) ? 100 * $4 / $5 : 0}' | median)
    all=$(printf '%s\n' "$sel" | cut -f4 | paste -sd' ')
    printf '%-28s %-8s %-36s median %6.2f Mpps  ratio %5.1f%%  (runs: %s)\n' "$w" "$m" "$d" "$mpps" "$ratio" "$all"
done

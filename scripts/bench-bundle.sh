#!/bin/bash
# Packs the benchmark into one folder that runs on a bare x86-64 Linux
# machine with no DPDK installed (a many-core box for the scaling table in
# BENCHMARKS.md):
#
#   bash scripts/bench-bundle.sh [DIR]        # default target/rvs-bench-bundle
#   (PROFILE=debug takes target/debug's binaries; BIN_DIR=DIR takes them
#   from DIR: the test passes its own)
#   # copy DIR to the machine, then, as root:
#   DIR/run.sh --workers 4 --workloads est,syn --modes nat,dr --rounds 3
#
# What it holds: rvsd, rvs-bench, rvs-pktgen and Debian's dpdk-testpmd
# (bin/), every shared library ldd lists for them and for the PMDs except
# glibc's own (lib/, by soname), and the PMDs the harness loads - net_pcap,
# net_null, net_memif, bus_vdev, mempool_ring - each one file in lib/ with
# a `.so` link beside it, so EAL's `-d lib/` loads each exactly once and
# the other PMDs find the same file as a dependency (two copies of
# bus_vdev break every vdev). run.sh sets LD_LIBRARY_PATH, passes `-d lib/`
# to testpmd and rvsd (RVS_EAL_EXTRA), reserves 2 MiB hugepages (mounted
# with pagesize=2M: a kernel whose default is 1 GiB gives EAL none
# otherwise) and runs rvs-bench with your arguments. Keep DIR out of a
# world-writable folder such as /tmp: EAL refuses to load plugins there.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/rvs-bench-bundle}
profile=${PROFILE:-release}
bins=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/$profile}
for b in rvsd rvs-bench rvs-pktgen; do
    [ -x "$bins/$b" ] || { echo "bench-bundle: $bins/$b missing: cargo build --profile $profile --bins" >&2; exit 1; }
done
testpmd=$(command -v dpdk-testpmd) || { echo "bench-bundle: dpdk-testpmd missing (apt-get install dpdk)" >&2; exit 1; }
pmds=$(pkg-config --variable=pmdsdir libdpdk 2>/dev/null || true)
[ -d "$pmds" ] || pmds=$(ls -d /usr/lib/x86_64-linux-gnu/dpdk/pmds-* | head -1)
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
cp "$bins/rvsd" "$bins/rvs-bench" "$bins/rvs-pktgen" "$testpmd" "$out/bin/"
# The PMDs, by soname (librte_net_pcap.so.23), with a .so link for EAL's scan.
drivers=(net_pcap net_null net_memif bus_vdev mempool_ring)
for d in "${drivers[@]}"; do
    f=$(readlink -f "$pmds/librte_$d.so")
    soname=$(objdump -p "$f" | awk '/SONAME/ {print $2}')
    cp "$f" "$out/lib/$soname"
    ln -sf "$soname" "$out/lib/librte_$d.so"
done
# Every library the binaries and the PMDs need, except glibc's own; a
# library already there (a PMD) is not copied twice.
skip='^(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libgcc_s|linux-vdso)\.'
for f in "$out"/bin/* "$out"/lib/*.so.*; do
    ldd "$f" 2>/dev/null | awk '$3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
    [[ $name =~ $skip ]] && continue
    [ -e "$out/lib/$name" ] || cp "$(readlink -f "$path")" "$out/lib/$name"
done
cat > "$out/run.sh" <<'EOF'
#!/bin/bash
# Runs rvs-bench from this folder (see scripts/bench-bundle.sh in rvs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH="$here/lib"
export PATH="$here/bin:$PATH"
export RVS_EAL_EXTRA="-d $here/lib"
export RVS_BIN_DIR="$here/bin"
want=${RVS_HUGEPAGES:-4096}
hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$hp" ] && [ "$(cat "$hp")" -lt "$want" ]; then echo "$want" > "$hp" || true; fi
if ! grep -qs 'pagesize=2M' /proc/mounts; then
    mkdir -p /dev/hugepages-2M
    mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages-2M 2>/dev/null || true
fi
lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|NUMA node\(s\))' || true
exec "$here/bin/rvs-bench" "$@"
EOF
chmod +x "$out/run.sh"
echo "bench-bundle: $out ($(du -sh "$out" | cut -f1)): $(ls "$out/bin" | tr '\n' ' ')"

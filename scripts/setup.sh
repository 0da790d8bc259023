#!/usr/bin/env bash
# Installs what rvs needs on a Debian 12 machine and reserves hugepages.
# Idempotent: installs only what is missing. Run as root.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (sudo bash scripts/setup.sh)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# Debian packages: DPDK 22.11 (headers and PMDs; dpdk-dev has dpdk-testpmd,
# the benchmark baseline), libclang for bindgen, iproute2 for the namespace
# test beds, python3 + scapy for the golden packet generator,
# python3-prometheus-client to parse the metrics endpoint in tests, procps
# for sysctl, util-linux for setpriv, coreutils' stdbuf (always present),
# keepalived for the VRRP interoperability test of the pair; bird2 (BGP
# towards the routers) for the scale-out tests, systemd for systemd-analyze
# (the unit file is verified), nftables to lose packets on purpose (the SYN
# proxy test makes the client SACK); man-db, binutils and dpkg-dev to build
# and check the Debian package (man -l, objdump, dpkg-shlibdeps); docker.io
# and debootstrap to build and run the container image from a local base,
# docker-compose to run it from docker/compose.yaml; netbase for
# /etc/services (rvsadm -L names ports as ipvsadm does); dnsmasq-base, a
# real DNS server for the DNS health check test; tcpdump to capture what a
# live rvsd receives (the replay test replays it); chromium (headless) and
# fonts-dejavu-core to load the status page in a real browser; valgrind
# for the instruction counts of scripts/ipp.sh (tested, quoted in
# BENCHMARKS.md).
pkgs=(libdpdk-dev dpdk dpdk-dev clang libclang-dev pkg-config iproute2 procps util-linux python3 python3-scapy python3-prometheus-client libpcap-dev ca-certificates curl keepalived bird2 systemd nftables man-db binutils dpkg-dev docker.io debootstrap docker-compose netbase dnsmasq-base tcpdump chromium fonts-dejavu-core valgrind)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust (rustup) and cargo-nextest, when absent.
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "setup.sh: installing Rust with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi
# clippy and rustfmt: test.sh checks formatting and lints.
for c in clippy rustfmt; do
    if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
        rustup component add "$c" || echo "setup.sh: could not add the $c component" >&2
    fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup.sh: installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

# Hugepages, as an operator sets them up: 512 x 2 MiB, hugetlbfs mounted.
hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$hp" ] && [ "$(cat "$hp")" -lt 512 ]; then
    echo 512 > "$hp" || true
fi
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages || true
echo "setup.sh: ready ($(pkg-config --modversion libdpdk 2>/dev/null | sed 's/^/DPDK /'), $(cargo --version), hugepages free: $(awk '/HugePages_Free/ {print $2}' /proc/meminfo))"

#!/usr/bin/env bash
# Builds the Debian package of rvs: rvsd and rvsadm, the systemd units
# (rvsd.service, rvs-hugepages.service), /etc/rvs/rvs.toml and
# /etc/default/rvs as conffiles, man pages rvsd(8), rvsadm(8), rvs.toml(5),
# bash and zsh completions, and the example files under /usr/share/doc/rvs.
#
#   bash scripts/package.sh                   # release build -> target/debian/rvs_VERSION_ARCH.deb
#   bash scripts/package.sh --bins target/debug --out DIR   # (the test's: no release build)
#
# Built with dpkg-deb from a staged tree rather than cargo-deb: nothing to
# install or compile, and the library Depends come from Debian's own
# dpkg-shlibdeps (the packages of the libraries the binaries link), to
# which the script adds the DPDK drivers rvsd loads at run time (Debian's
# EAL loads its PMDs as plugins, so ldd cannot see them).
set -euo pipefail
cd "$(dirname "$0")/.."
bins=""
out=target/debian
while [ $# -gt 0 ]; do
    case "$1" in
        --bins) bins=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "package.sh: unknown option $1 (--bins DIR, --out DIR)" >&2; exit 2 ;;
    esac
done
if [ -z "$bins" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --release -p mgmt --bins
    bins=target/release
fi
for b in rvsd rvsadm; do
    [ -x "$bins/$b" ] || { echo "package.sh: $bins/$b not built" >&2; exit 2; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)-1
arch=$(dpkg --print-architecture)
mkdir -p "$out"
stage=$(mktemp -d "${TMPDIR:-/tmp}/rvs-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/debian/rvs
mkdir -p "$root"/{DEBIAN,usr/sbin,lib/systemd/system,usr/lib/rvs,etc/rvs,etc/default} \
    "$root"/usr/share/{man/man8,man/man5,bash-completion/completions,zsh/vendor-completions,doc/rvs}
for b in rvsd rvsadm; do
    strip --strip-debug -o "$root/usr/sbin/$b" "$bins/$b"
    chmod 0755 "$root/usr/sbin/$b"
done
install -m 0644 mgmt/systemd/rvsd.service mgmt/systemd/rvs-hugepages.service "$root/lib/systemd/system/"
install -m 0755 mgmt/systemd/rvs-hugepages "$root/usr/lib/rvs/"
install -m 0644 mgmt/systemd/rvs.default "$root/etc/default/rvs"
install -m 0644 rvs.example.toml "$root/etc/rvs/rvs.toml"
# Generated from rvsd's clap command and from the annotated example; rvsadm's
# by hand (its command line is ipvsadm's).
"$bins/rvsd" --generate man > "$stage/rvsd.8"
"$bins/rvsd" --generate toml-man > "$stage/rvs.toml.5"
cp mgmt/man/rvsadm.8 "$stage/rvsadm.8"
gzip -9n -c "$stage/rvsd.8" > "$root/usr/share/man/man8/rvsd.8.gz"
gzip -9n -c "$stage/rvsadm.8" > "$root/usr/share/man/man8/rvsadm.8.gz"
gzip -9n -c "$stage/rvs.toml.5" > "$root/usr/share/man/man5/rvs.toml.5.gz"
"$bins/rvsd" --generate bash > "$root/usr/share/bash-completion/completions/rvsd"
"$bins/rvsd" --generate zsh > "$root/usr/share/zsh/vendor-completions/_rvsd"
install -m 0644 mgmt/completions/rvsadm.bash "$root/usr/share/bash-completion/completions/rvsadm"
install -m 0644 mgmt/completions/_rvsadm "$root/usr/share/zsh/vendor-completions/_rvsadm"
install -m 0644 README.md BENCHMARKS.md rvs.example.toml bird.example.conf "$root/usr/share/doc/rvs/"
printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: rvs\n\nFiles: *\nLicense: Apache-2.0\n See /usr/share/common-licenses/Apache-2.0.\n' \
    > "$root/usr/share/doc/rvs/copyright"

# Depends: the libraries the binaries link (dpkg-shlibdeps), plus the DPDK
# drivers rvsd uses at run time: the vdev and PCI buses, the ring mempool
# (every mbuf pool), and the virtual devices rvs documents and tests (TAP
# for ports and kernel interfaces, pcap, null, memif, virtio-user).
# Recommends: the common NIC drivers (a box uses one of them).
mkdir -p "$stage/debian"
printf 'Source: rvs\n\nPackage: rvs\nArchitecture: any\n' > "$stage/debian/control"
shlibs=$(cd "$stage" && dpkg-shlibdeps -O debian/rvs/usr/sbin/rvsd debian/rvs/usr/sbin/rvsadm | sed -n 's/^shlibs:Depends=//p')
pmds="librte-bus-vdev23, librte-bus-pci23, librte-mempool-ring23, librte-net-tap23, librte-net-pcap23, librte-net-null23, librte-net-memif23, librte-net-virtio23"
recommends="librte-net-ixgbe23, librte-net-i40e23, librte-net-ice23, librte-net-iavf23, librte-net-mlx5-23, librte-net-bnxt23, librte-net-e1000-23, librte-net-vhost23, dpdk"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: rvs
Version: $version
Architecture: $arch
Maintainer: rvs developers <rvs@example.invalid>
Installed-Size: $size
Depends: $shlibs, $pmds
Recommends: $recommends
Suggests: bird2
Section: net
Priority: optional
Homepage: https://example.invalid/rvs
Description: Rust Virtual Server, a DPDK layer-4 load balancer
 rvs is what Linux Virtual Server (IPVS, ipvsadm, keepalived) is to the
 kernel, rebuilt as a poll-mode DPDK dataplane: NAT, direct routing,
 tunnel and full NAT for IPv4 and IPv6, nine schedulers with Maglev,
 health checks, an ipvsadm-compatible rvsadm, live reload, Prometheus
 metrics, an active/backup pair with session sync, and scale-out behind
 ECMP with BGP through BIRD.
EOF
printf '/etc/rvs/rvs.toml\n/etc/default/rvs\n' > "$root/DEBIAN/conffiles"
# Not enabled or started on install: /etc/rvs/rvs.toml must name this
# box's devices first (systemctl enable --now rvsd).
cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
EOF
cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop rvsd.service rvs-hugepages.service || true
fi
EOF
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
deb="$out/rvs_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "package.sh: $deb ($(du -h "$deb" | cut -f1))"

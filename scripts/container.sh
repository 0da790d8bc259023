#!/usr/bin/env bash
# Builds the container images from the Debian package (docker/Dockerfile):
#   TAG       rvsd and rvsadm on Debian 12 with the package's runtime Depends
#   TAG-demo  the same plus the demo (rvs-demo, rvs-testkit)
#
#   bash scripts/container.sh                       # release build; images rvs and rvs-demo
#   bash scripts/container.sh --bins target/debug --tag rvs-test   # (the test's)
#
# Needs a running Docker daemon. The base image (--base, default
# rvs-base:bookworm) is made locally with debootstrap when it is missing,
# since no image registry may be reachable (about a minute; kept for the
# next build).
set -euo pipefail
cd "$(dirname "$0")/.."
bins=""
tag=rvs
base=rvs-base:bookworm
while [ $# -gt 0 ]; do
    case "$1" in
        --bins) bins=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        *) echo "container.sh: unknown option $1 (--bins DIR, --tag NAME, --base IMAGE)" >&2; exit 2 ;;
    esac
done
if ! docker info >/dev/null 2>&1; then
    echo "container.sh: no Docker daemon answers (apt-get install docker.io; dockerd &)" >&2
    exit 2
fi
if [ -z "$bins" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --release --bins
    bins=target/release
fi
ctx=$(mktemp -d "${TMPDIR:-/tmp}/rvs-image.XXXXXX")
rootfs=""
cleanup() {
    rm -rf "$ctx"
    if [ -n "$rootfs" ]; then rm -rf "$rootfs"; fi
}
trap cleanup EXIT
if ! docker image inspect "$base" >/dev/null 2>&1; then
    mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/rvs-rootfs.XXXXXX")
    echo "container.sh: making $base with debootstrap from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$ctx/debootstrap.log" 2>&1 \
        || { tail -20 "$ctx/debootstrap.log" >&2; exit 1; }
    tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
    rm -rf "$rootfs"
    rootfs=""
fi
bash scripts/package.sh --bins "$bins" --out "$ctx/deb" >/dev/null
mv "$ctx"/deb/rvs_*.deb "$ctx/rvs.deb"
cp docker/Dockerfile "$ctx/"
cp "$bins/rvs-demo" "$bins/rvs-testkit" "$ctx/"
strip --strip-debug "$ctx/rvs-demo" "$ctx/rvs-testkit"
docker build -q --build-arg "BASE=$base" --target rvs -t "$tag" "$ctx" >/dev/null
docker build -q --build-arg "BASE=$base" --target demo -t "$tag-demo" "$ctx" >/dev/null
echo "container.sh: images $tag and $tag-demo (base $base)"

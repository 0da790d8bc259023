#!/usr/bin/env bash
# Installs what is missing, builds rvs, and runs the demo: rvsd balancing
# HTTP and UDP from two clients over three real servers, in network
# namespaces, with a printed summary. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins
exec target/release/rvs-demo

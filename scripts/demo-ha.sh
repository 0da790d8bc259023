#!/usr/bin/env bash
# Installs what is missing, builds rvs, and runs the failover demo: two rvsd
# as an active/backup pair (VRRPv3 and session sync) in network namespaces,
# 500 long-lived client connections, UDP flows and new connections, the
# master killed with SIGKILL; prints the failover time and the connections
# kept. Run as root. Mode: nat (default), fullnat, dr or tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins
exec target/release/rvs-demo ha "${1:-nat}"

#!/usr/bin/env bash
# The main job (README). Today: build everything in release mode and show every scheduler
# plugin at work through the real loaded .so files. When the director lands (issue 3) this
# becomes a whole cluster in network namespaces with real traffic.
#   scripts/demo.sh        run it
#   scripts/demo.sh stop   remove what it started (nothing yet)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-start}" in
    stop) echo "demo: nothing to stop"; exit 0 ;;
    start) ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

command -v gcc >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get update -qq && apt-get install -y -qq gcc libc6-dev; }
cargo build --release --workspace --locked
cargo build --release --locked -p lvs-sched-host --example sched_demo
echo
echo "== every scheduler, 60 connections over three servers A, B, C with weights 3, 2, 1 =="
LVS_PLUGIN_PATH="$PWD/target/release" target/release/examples/sched_demo

#!/usr/bin/env bash
# The project's main job with sensible defaults: build what is missing, spawn the jailed GPU
# process and print what it is confined to. Extra arguments go to `rayvmm sandbox-report`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh >&2
cargo build --release -p vmm -p gpu-process >&2
exec target/release/rayvmm sandbox-report "$@"

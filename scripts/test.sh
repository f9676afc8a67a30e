#!/usr/bin/env bash
# The project's test command: installs what is missing, builds every binary the tests spawn
# (including the probe build of ray-gpu the escape tests need), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh
# QEMU 10, OVMF, Xvfb and the Linux guest image (cached) for the guest tests (guest_*.rs).
bash scripts/setup-guest-tools.sh && bash guest/build-linux-guest.sh

echo "== build"
# The escape tests drive a probe build of the real ray-gpu. It is built first in the shared
# target dir (its dependencies are the ordinary build's, so nothing compiles twice), copied
# aside to target/probe/debug/ray-gpu, and then the ordinary ray-gpu is rebuilt over it.
cargo build -p gpu-process --features probe
mkdir -p target/probe/debug
cp target/debug/ray-gpu target/probe/debug/ray-gpu
cargo clippy -p gpu-process --features probe --all-targets -- -D warnings
cargo test -p gpu-process --features probe
cargo build --workspace --all-targets

echo "== lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace --no-fail-fast

if [ -x scripts/fuzz.sh ]; then
  echo "== fuzz"
  bash scripts/fuzz.sh
fi

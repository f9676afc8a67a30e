#!/usr/bin/env bash
# The project's test command: installs what is missing, builds every binary the tests spawn
# (including the probe build of ray-gpu the escape tests need), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh

echo "== build"
cargo build --workspace --all-targets
# The escape tests drive a probe build of the real ray-gpu; it lives in its own target dir so
# the ordinary ray-gpu is never built with the probe feature.
cargo build -p gpu-process --features probe --target-dir target/probe

echo "== lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace --no-fail-fast

if [ -x scripts/fuzz.sh ]; then
  echo "== fuzz"
  bash scripts/fuzz.sh
fi

#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a fixed number of executions, starting from the
# committed seed corpora, so CI can call it: scripts/fuzz.sh [RUNS] (default 20000).
# Each target also stops after FUZZ_SECONDS (default 15) so that the ten targets stay within
# about three minutes, whatever their speed (the relay and vhost-user targets spawn threads
# and sockets per input and run a few thousand inputs a second, not tens of thousands).
# FUZZ_TARGETS="a b" runs only those. The long campaign and coverage: FUZZING.md.
#
# cargo fuzz builds with -Z sanitizer flags, so it needs a nightly compiler: the nightly
# toolchain when rustup has one, else the stable one with RUSTC_BOOTSTRAP=1.
set -euo pipefail

RUNS="${1:-20000}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-15}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

TOOLCHAIN=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    TOOLCHAIN=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

TARGETS="${FUZZ_TARGETS:-$(cargo "${TOOLCHAIN[@]}" fuzz list --fuzz-dir fuzz)}"
for target in $TARGETS; do
    # New inputs go to a scratch corpus; the committed seeds stay as they are.
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    echo "== fuzz $target: $RUNS runs, at most ${SECONDS_PER_TARGET}s"
    cargo "${TOOLCHAIN[@]}" fuzz run --fuzz-dir fuzz "$target" "$scratch" "fuzz/corpus/$target" -- \
        -runs="$RUNS" -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
    rm -rf "$scratch"
    trap - EXIT
done

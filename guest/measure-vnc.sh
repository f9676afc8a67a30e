#!/usr/bin/env bash
# What watching costs: kmscube in the Linux guest on the jailed GPU, with nobody watching and
# with a VNC viewer (guest/vnc-watch.py) asking for updates back to back while kmscube runs,
# rounds
# interleaved (TCG timings vary run to run). Prints the guest's kmscube fps for each run, the
# viewer's updates and frames per second (frames: updates with pixels, from the first to the
# last), and the medians.
#
#   guest/measure-vnc.sh [ROUNDS] [FRAMES]      default 3 rounds of 1200 frames
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
frames=${2:-1200}

bash scripts/setup-guest-tools.sh >&2
bash guest/build-linux-guest.sh >&2
cargo build --release -p vmm -p gpu-process >&2
image=.cache/guest/linux
work=$(mktemp -d)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT
append="console=ttyS0,115200 panic=-1 mitigations=off drm.edid_firmware=edid/1024x768.bin"
append+=" vt.global_cursor_default=0 rayos.workload=kmscube rayos.frames=$frames"

# run VARIANT: one guest run (unwatched, or watched from kmscube's start to power-off); prints
# "VARIANT kmscube_fps=F [vnc_updates=N vnc_seconds=S vnc_updates_per_s=R]".
run() {
  local variant=$1 log=$work/rayvmm.log serial=$work/serial.log watch=$work/watch.log
  : >"$watch"
  target/release/rayvmm run --kernel "$image/vmlinuz" --initrd "$image/initrd.img" \
    --append "$append" --memory 1G --cpus 2 --3d --vnc 127.0.0.1::0 >"$serial" 2>"$log" &
  local pid=$! address=""
  while kill -0 "$pid" 2>/dev/null && [ -z "$address" ]; do
    address=$(sed -n 's/.*VNC server listening on \([^ ]*\).*/\1/p' "$log")
    sleep 0.2
  done
  local watcher=""
  if [ "$variant" = watched ] && [ -n "$address" ]; then
    # From just before kmscube starts (the guest names its display connector first).
    until grep -q 'RAYOS-RESULT connector=' "$serial" || ! kill -0 "$pid" 2>/dev/null; do
      sleep 0.1
    done
    python3 guest/vnc-watch.py "${address%:*}" "${address##*:}" 3600 >"$watch" 2>&1 &
    watcher=$!
  fi
  wait "$pid" || true
  if [ -n "$watcher" ]; then
    kill -TERM "$watcher" 2>/dev/null || true
    wait "$watcher" || true
  fi
  local fps
  fps=$(tr -d '\r' <"$serial" | sed -n 's/^RAYOS-RESULT kmscube_fps=//p' | tail -n1)
  if [ -z "$fps" ]; then
    local keep=target/measure-vnc/failed-$variant-$(date +%s)
    mkdir -p "$keep" && cp "$log" "$serial" "$watch" "$keep/"
    echo "measure-vnc: $variant run gave no kmscube fps; logs kept in $keep" >&2
  fi
  echo "$variant kmscube_fps=${fps:-none} $(grep -o 'vnc_updates=.*' "$watch" || true)"
}

results=$work/results
for r in $(seq "$rounds"); do
  for variant in unwatched watched; do
    run "$variant" | tee -a "$results"
  done
done
# median NAME KEY PATTERN: the median (min-max) of KEY over the result lines matching PATTERN.
median() {
  grep "$3" "$results" | sed -n "s/.*$2=\([0-9][0-9.]*\).*/\1/p" | sort -n |
    awk -v v="$1" '{ a[NR] = $1 } END { if (NR) printf "%-28s %.1f (%.1f-%.1f)\n", v,
      (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, a[1], a[NR] }'
}
echo "----- medians over $rounds rounds"
median "kmscube fps, unwatched" kmscube_fps "^unwatched "
median "kmscube fps, watched" kmscube_fps "^watched "
median "VNC frames/s while it draws" vnc_frames_per_s "^watched "

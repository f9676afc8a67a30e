#!/usr/bin/env bash
# Records the Linux test guest's GPU command streams for the replay benchmark and the GPU host
# run (scripts/nvidia-pack.sh): kmscube (120 frames) and a short glmark2 set (build, texture,
# shading), each through `rayvmm run --record` on the jailed ray-gpu (llvmpipe, TCG), into
# .cache/recordings/{kmscube,glmark2}.raygrec. Cached: a recording already there is kept
# (FORCE=1 records again). Each check: `rayvmm replay` must match every recorded frame.
#
#   bash scripts/record-guests.sh            # release binaries, built if missing
set -euo pipefail
cd "$(dirname "$0")/.."

out=.cache/recordings
mkdir -p "$out"
bash guest/build-linux-guest.sh >/dev/null
image=.cache/guest/linux
if [ ! -x target/release/rayvmm ] || [ ! -x target/release/ray-gpu ]; then
  printf 'cargo: release rayvmm and ray-gpu ... '
  cargo build --release -p vmm -p gpu-process >"$out/build.log" 2>&1 || { echo "failed (see $out/build.log)"; exit 1; }
  echo done
fi
rayvmm=target/release/rayvmm
args="console=ttyS0,115200 panic=-1 mitigations=off drm.edid_firmware=edid/1024x768.bin vt.global_cursor_default=0"

record() { # NAME APPEND...
  local name=$1; shift
  local file=$out/$name.raygrec
  if [ -s "$file" ] && [ "${FORCE:-0}" != 1 ]; then
    echo "$name: cached ($file)"
    return
  fi
  printf '%s: recording the guest (a minute under TCG) ... ' "$name"
  if ! "$rayvmm" run --kernel "$image/vmlinuz" --initrd "$image/initrd.img" --memory 1G \
      --append "$args $*" --record "$file" >"$out/$name.serial.log" 2>"$out/$name.rayvmm.log"; then
    echo "failed (see $out/$name.rayvmm.log)"; rm -f "$file"; exit 1
  fi
  grep -o 'recorded .*' "$out/$name.rayvmm.log" | head -n1
  printf '%s: replaying to check it ... ' "$name"
  "$rayvmm" replay "$file" | tail -n1
}

record kmscube rayos.workload=kmscube rayos.frames=120
record glmark2 rayos.workload=glmark2 rayos.duration=2 "rayos.glmark2=build;texture;shading"

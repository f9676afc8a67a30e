#!/usr/bin/env bash
# The project's main job. With no arguments it:
#   1. builds what is missing: host packages, QEMU 10 + guest tools, the Linux guest image
#      (cached under .cache/guest/), and the release binaries;
#   2. prints the sandbox report of the jailed GPU process (`rayvmm sandbox-report`);
#   3. boots the Linux guest under `rayvmm run` with its GPU served by the jailed ray-gpu
#      (VirGL 3D), runs kmscube in it, and saves screenshots under target/run/ (kmscube.png: the
#      richest frame captured while kmscube rendered; final.png: the screen at power-off);
#   4. prints the guest's GL renderer and kmscube's frame rate.
# Extra arguments go to `rayvmm run` (e.g. `--display 800x600`, `--no-3d`).
# Environment: RAYOS_OUT (default target/run), RAYOS_FRAMES (kmscube frames, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${RAYOS_OUT:-target/run}
frames=${RAYOS_FRAMES:-600}
log() { echo "run.sh: $*" >&2; }

log "setting up (host packages, QEMU 10, guest image, binaries)"
bash scripts/setup-host.sh >&2
bash scripts/setup-guest-tools.sh >&2
bash guest/build-linux-guest.sh >&2
cargo build --release -p vmm -p gpu-process >&2
rayvmm=target/release/rayvmm
image=.cache/guest/linux

echo "== sandbox report of the jailed GPU process"
"$rayvmm" sandbox-report

mkdir -p "$out"
rm -f "$out"/final*.png "$out"/kmscube.png
serial=$out/serial.log
events=$out/rayvmm.log
append="console=ttyS0,115200 panic=-1 mitigations=off drm.edid_firmware=edid/1024x768.bin"
append+=" vt.global_cursor_default=0 rayos.workload=kmscube rayos.frames=$frames"

echo "== kmscube in a Linux guest on the jailed GPU (serial console follows)"
"$rayvmm" run --kernel "$image/vmlinuz" --initrd "$image/initrd.img" --append "$append" \
  --memory 1G --cpus 2 --3d --screenshot "$out/final.png" "$@" \
  > >(tee "$serial") 2> >(tee "$events" >&2) &
pid=$!
# kmscube gives the screen back to the console when it ends, so take screenshots while it
# runs (SIGUSR1: rayvmm writes final-1.png, final-2.png ...) and keep the richest one.
while kill -0 "$pid" 2>/dev/null; do
  sleep 2
  kill -USR1 "$pid" 2>/dev/null || true
done
rc=0
wait "$pid" || rc=$?
sleep 0.2 # let tee finish

best=$(sed -n 's/.*screenshot [0-9]*x[0-9]* (\([0-9]*\) colours) written to \(.*\) (source: .*/\1 \2/p' "$events" |
  sort -n -k1,1 | tail -n1 | cut -d' ' -f2-)
if [ -n "$best" ] && [ -f "$best" ]; then
  cp "$best" "$out/kmscube.png"
fi

result() { tr -d '\r' <"$serial" | sed -n "s/^RAYOS-RESULT $1=//p" | tail -n1; }
echo "== result"
echo "rayvmm exit code:  $rc"
echo "guest GL renderer: $(result gl_renderer)"
echo "kmscube:           $(result kmscube_frames) frames in $(result kmscube_seconds) s = $(result kmscube_fps) fps (guest's own measurement, TCG)"
echo "screenshots:       $out/kmscube.png (while rendering), $out/final.png (at power-off)"
echo "logs:              $serial (serial console), $events (rayvmm)"
if [ "$rc" -ne 0 ] || ! tr -d '\r' <"$serial" | grep -q 'RAYOS-DONE status=ok'; then
  log "the guest run failed (see $events)"
  exit 1
fi

#!/usr/bin/env bash
# Reference runs of the RayOS test guests under QEMU 10 (TCG), with QEMU's own GPU devices.
# These are the command lines the project's engine reproduces; see guest/README.md.
#
#   guest/run-reference.sh VARIANT [options]
#
# Variants:
#   2d               in-process -device virtio-gpu-pci, -display none        (workload 2d)
#   gl               in-process -device virtio-gpu-gl-pci (virgl), -display sdl,gl=on on a
#                    private Xvfb                                            (workload kmscube)
#   vhost-user       -device vhost-user-gpu-pci + Debian's /usr/lib/qemu/vhost-user-gpu (2D) on
#                    a socket path, guest RAM in memory-backend-memfd     (workload 2d)
#   vhost-user-fd    the same, but as rayvmm does it: guest RAM a memfd made by the parent
#                    (memory-backend-file on /proc/self/fd/N) and the vhost-user channel an
#                    inherited socketpair end (-chardev socket,fd=N)      (workload 2d)
#   uefi             OVMF + virtio-gpu-pci, a tiny FAT disk whose startup.nsh reports and waits
#   uefi-vhost-user  OVMF + vhost-user-gpu-pci + the reference backend
#
# Options:
#   --workload W       2d|kmscube|glmark2|info|shell (Linux variants)
#   --frames N         kmscube frames (default 120)
#   --duration S       seconds per glmark2 scene (default 3)
#   --screendump PATH  save a PNG screendump (QMP) when the guest reports RAYOS-DONE
#   --log PATH         keep the serial log here
#   --timeout S        give up after S seconds (default depends on the variant)
#   --smp N            vCPUs (default 2)   --mem SIZE   guest RAM (default 1G)
#   --quiet            do not stream the serial console (the results are printed at the end)
#
# Prints the serial console as it runs, then the RAYOS-RESULT lines and a RAYOS-HOST line with
# host-measured times. Exit status 0 only if the guest printed RAYOS-DONE status=ok. Every
# process it starts (QEMU, Xvfb, the vhost-user backend) is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
# shellcheck source=firmware.sh
. "$here/firmware.sh"

die() { echo "run-reference: error: $*" >&2; exit 2; }
log() { echo "run-reference: $*" >&2; }

[ $# -ge 1 ] || die "usage: $0 2d|gl|vhost-user|vhost-user-fd|uefi|uefi-vhost-user [options]"
variant=$1
shift
workload="" frames=120 duration=3 screendump="" keep_log="" timeout="" smp=2 mem=1G quiet=0
while [ $# -gt 0 ]; do
  case "$1" in
    --workload) workload=$2; shift ;;
    --frames) frames=$2; shift ;;
    --duration) duration=$2; shift ;;
    --screendump) screendump=$2; shift ;;
    --log) keep_log=$2; shift ;;
    --timeout) timeout=$2; shift ;;
    --smp) smp=$2; shift ;;
    --mem) mem=$2; shift ;;
    --quiet) quiet=1 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
QEMU=qemu-system-x86_64
BACKEND=/usr/lib/qemu/vhost-user-gpu

"$repo/scripts/setup-guest-tools.sh" >&2
qemu_version=$($QEMU --version | head -n1)

uefi=0 need_x=0 vhost=""
case "$variant" in
  2d) workload=${workload:-2d} ;;
  gl) workload=${workload:-kmscube}; need_x=1 ;;
  vhost-user) workload=${workload:-2d}; vhost=path ;;
  vhost-user-fd) workload=${workload:-2d}; vhost=fd ;;
  uefi) uefi=1; workload=uefi-shell ;;
  uefi-vhost-user) uefi=1; workload=uefi-shell; vhost=path ;;
  *) die "unknown variant $variant" ;;
esac
if [ -z "$timeout" ]; then
  case "$workload" in
    glmark2) timeout=420 ;;
    kmscube) timeout=300 ;;
    shell) timeout=86400 ;;
    *) timeout=180 ;;
  esac
fi

if [ $uefi = 0 ]; then
  RAYOS_GUEST_TOOLS_CHECKED=1 "$here/build-linux-guest.sh" >&2
  img="${RAYOS_GUEST_OUT:-$repo/.cache/guest/linux}"
fi

mkdir -p "$repo/.cache/guest/runs"
run=$(mktemp -d "$repo/.cache/guest/runs/$variant.XXXXXX")
serial="$run/serial.log"
qmp="$run/qmp.sock"
: >"$serial"

qemu_pid="" backend_pid="" xvfb_pid="" tail_pid=""
stop() {
  local p
  for p in "$qemu_pid" "$backend_pid" "$xvfb_pid"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  if [ -f "$run/backend.pid" ]; then
    p=$(cat "$run/backend.pid")
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  fi
  for p in "$qemu_pid" "$backend_pid" "$xvfb_pid"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  if [ -n "$tail_pid" ]; then
    sleep 0.2
    kill "$tail_pid" 2>/dev/null || true
    wait "$tail_pid" 2>/dev/null || true
  fi
  qemu_pid="" backend_pid="" xvfb_pid="" tail_pid=""
}
cleanup() {
  stop
  if [ -n "$keep_log" ] && [ -f "$serial" ]; then
    mkdir -p "$(dirname "$keep_log")"
    cp "$serial" "$keep_log"
  fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The serial console goes to a file the script watches; the interactive shell workload gets it on
# this terminal instead (QEMU's mux: Ctrl-A X quits, Ctrl-A C toggles the monitor).
serial_chardev="file,id=ser,path=$serial"
# The guest holds its display 600 s after RAYOS-DONE for the screendump; this script quits QEMU
# sooner. The shell workload powers off as soon as the shell exits.
hold=600
if [ "$workload" = shell ]; then
  serial_chardev="stdio,id=ser,mux=on,signal=off"
  hold=0
fi

# --- The command line -------------------------------------------------------------------------
qemu=(
  "$QEMU" -accel tcg
  # -cpu max breaks guest llvmpipe under QEMU 10 ("LLVM ERROR: 64-bit code requested ...").
  # The features TCG lacks are switched off explicitly, which only silences its warnings.
  -cpu Haswell-v4,-pcid,-tsc-deadline,-invpcid,-spec-ctrl -smp "$smp" -m "$mem"
  -nodefaults -no-user-config -no-reboot
  -chardev "$serial_chardev" -serial chardev:ser
  -qmp "unix:$qmp,server=on,wait=off"
)
machine=q35
if [ -n "$vhost" ]; then
  # vhost-user needs guest RAM the backend can map: shared memory.
  if [ "$vhost" = fd ]; then
    qemu+=(-object "memory-backend-file,id=mem,size=$mem,mem-path=/proc/self/fd/@MEMFD@,share=on")
  else
    qemu+=(-object "memory-backend-memfd,id=mem,size=$mem,share=on")
  fi
  machine="q35,memory-backend=mem"
fi
qemu+=(-machine "$machine")

case "$variant" in
  2d|uefi) qemu+=(-device virtio-gpu-pci -display none) ;;
  gl) qemu+=(-device virtio-gpu-gl-pci -display sdl,gl=on) ;;
  vhost-user|uefi-vhost-user)
    qemu+=(-chardev "socket,id=vgpu,path=$run/vgpu.sock" -device vhost-user-gpu-pci,chardev=vgpu
      -display none) ;;
  vhost-user-fd)
    qemu+=(-chardev "socket,id=vgpu,fd=@VGPU_FD@" -device vhost-user-gpu-pci,chardev=vgpu
      -display none) ;;
esac

if [ $uefi = 1 ]; then
  code=$(rayos_ovmf_code)
  vars=$(rayos_ovmf_vars "$run/OVMF_VARS_4M.fd")
  mkdir -p "$run/esp"
  cp "$here/uefi/startup.nsh" "$run/esp/startup.nsh"
  qemu+=(
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
    -drive "if=pflash,format=raw,unit=1,file=$vars"
    # A tiny FAT disk made by QEMU from a directory (vvfat), read-only.
    -drive "if=none,id=esp,format=raw,readonly=on,file=fat:$run/esp"
    -device virtio-blk-pci,drive=esp
  )
else
  append="console=ttyS0,115200 panic=-1 loglevel=7 mitigations=off"
  append+=" drm.edid_firmware=edid/1024x768.bin vt.global_cursor_default=0"
  append+=" rayos.workload=$workload rayos.frames=$frames rayos.duration=$duration rayos.hold=$hold"
  qemu+=(-kernel "$img/vmlinuz" -initrd "$img/initrd.img" -append "$append")
fi

# --- Helpers ----------------------------------------------------------------------------------
if [ $need_x = 1 ]; then
  Xvfb -displayfd 3 -screen 0 2560x1600x24 -nolisten tcp 3>"$run/xdisplay" >"$run/xvfb.log" 2>&1 &
  xvfb_pid=$!
  for _ in $(seq 100); do [ -s "$run/xdisplay" ] && break; sleep 0.1; done
  [ -s "$run/xdisplay" ] || { cat "$run/xvfb.log" >&2; die "Xvfb did not start"; }
  export DISPLAY=":$(head -n1 "$run/xdisplay")"
  log "Xvfb on $DISPLAY (pid $xvfb_pid)"
fi
if [ "$vhost" = path ]; then
  "$BACKEND" --socket-path="$run/vgpu.sock" >"$run/backend.log" 2>&1 &
  backend_pid=$!
  for _ in $(seq 100); do [ -S "$run/vgpu.sock" ] && break; sleep 0.05; done
  [ -S "$run/vgpu.sock" ] || { cat "$run/backend.log" >&2; die "vhost-user-gpu did not listen"; }
  log "vhost-user-gpu backend pid $backend_pid on $run/vgpu.sock"
fi
launcher=()
if [ "$vhost" = fd ]; then
  launcher=("$PY" "$here/launch-fds.py" --mem-size "$mem" --backend "$BACKEND"
    --backend-pidfile "$run/backend.pid" --)
fi

# --- Run --------------------------------------------------------------------------------------
log "$qemu_version; variant $variant, workload $workload"
log "command line: $(printf '%q ' "${launcher[@]}" "${qemu[@]}")"
if [ "$workload" = shell ]; then
  qemu+=(-mon chardev=ser,mode=readline)
  "${launcher[@]}" "${qemu[@]}"
  exit $?
fi
if [ $quiet = 0 ]; then
  tail -n +1 -f "$serial" &
  tail_pid=$!
fi
t0=$(date +%s.%N)
"${launcher[@]}" "${qemu[@]}" >"$run/qemu.log" 2>&1 &
qemu_pid=$!

elapsed() { echo "$(date +%s.%N) $t0" | awk '{printf "%.2f", $1 - $2}'; }
t_init="" t_done="" outcome=timeout key_sent=0
deadline=$(( $(date +%s) + timeout ))
while :; do
  if [ $uefi = 1 ] && [ $key_sent = 0 ] && grep -qa 'to skip' "$serial"; then
    # Skip the UEFI shell's 5-second startup.nsh countdown: any key but ESC goes on at once.
    "$PY" "$here/qmp.py" "$qmp" send-key '{"keys":[{"type":"qcode","data":"spc"}]}' >/dev/null 2>&1 || true
    key_sent=1
  fi
  if [ -z "$t_init" ] && grep -qa 'RAYOS-INIT' "$serial"; then t_init=$(elapsed); fi
  if grep -qa 'RAYOS-DONE' "$serial"; then t_done=$(elapsed); outcome=done; break; fi
  if ! kill -0 "$qemu_pid" 2>/dev/null; then outcome=exited; break; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then break; fi
  sleep 0.1
done

shot=""
if [ -n "$screendump" ] && [ "$outcome" != exited ]; then
  mkdir -p "$(dirname "$screendump")"
  screendump=$(cd "$(dirname "$screendump")" && pwd)/$(basename "$screendump")
  if "$PY" "$here/qmp.py" "$qmp" screendump "$screendump" >"$run/screendump.log" 2>&1; then
    shot=$screendump
    cat "$run/screendump.log" >&2
  elif [ $need_x = 1 ]; then
    # A virgl scanout on -display sdl,gl=on has no DisplaySurface ("no surface"): grab the
    # QEMU window from Xvfb instead.
    log "QMP screendump failed ($(tail -n1 "$run/screendump.log")); grabbing the X window"
    if "$PY" "$here/xshot.py" "$screendump" >&2; then shot="$screendump (X window)"; fi
  else
    cat "$run/screendump.log" >&2
  fi
fi
if [ "$outcome" != exited ]; then
  "$PY" "$here/qmp.py" "$qmp" quit >/dev/null 2>&1 || true
fi
for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
stop

if [ -s "$run/qemu.log" ]; then
  log "QEMU said:"
  sed 's/^/  qemu: /' "$run/qemu.log" >&2
fi
if [ $quiet = 1 ]; then
  tr -d '\r' <"$serial" | grep -a -E '^(RAYOS-|\[ *[0-9.]+\] .*(virtio|drm|fb0|Console))' || true
fi
# The Linux display workloads end with the colour bands: check the screendump shows them.
bands=n/a
if [ -n "$shot" ] && tr -d '\r' <"$serial" | grep -aq 'RAYOS-RESULT fb_pattern=bands'; then
  if "$PY" "$here/check-bands.py" "$screendump" >"$run/bands.log" 2>&1; then bands=ok; else bands=wrong; fi
  log "$(cat "$run/bands.log")"
fi
echo "----- results ($variant, $workload)"
tr -d '\r' <"$serial" | grep -a -o -E '(RAYOS-RESULT|RAYOS-DONE).*' || true
echo "RAYOS-HOST variant=$variant workload=$workload outcome=$outcome" \
  "boot_to_init_s=${t_init:-none} boot_to_done_s=${t_done:-none} bands=$bands screendump=${shot:-none}"
if [ "$outcome" = done ] && [ "$bands" != wrong ] &&
  tr -d '\r' <"$serial" | grep -aq 'RAYOS-DONE status=ok'; then
  exit 0
fi
exit 1

#!/usr/bin/env bash
# Where the time goes: samples every thread of a real run with perf and writes who used the CPU
# (per thread, per library) and the hottest functions with their callers.
#
#   scripts/profile.sh guest [--workload kmscube|glmark2] [--seconds N] [--out DIR]
#       a jailed guest (rayvmm + ray-gpu + QEMU, release builds): perf samples QEMU, rayvmm and
#       ray-gpu for N seconds (default 8) once the workload draws;
#   scripts/profile.sh data-plane [--out DIR]
#       the data-plane benchmark without a guest (cargo bench -p integration --bench
#       jailed_gpu), the bench process and the jailed ray-gpu it starts, whole run.
#
# Output in DIR (default target/profile/<target>): perf.data, threads.txt (samples per thread
# and library), symbols.txt (hottest functions, self time), callers.txt (call graphs of the
# hottest functions), and a short summary on stdout: busy cores (samples / rate / seconds) and
# the threads' shares. Installs linux-perf when missing (apt). Progress goes to stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

prog=profile.sh
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
bad() {
  echo "$prog: $*" >&2
  echo "$prog: see scripts/profile.sh --help" >&2
  exit 2
}
log() { echo "$prog: $*" >&2; }

[ $# -ge 1 ] || bad "name what to profile: guest or data-plane"
target=$1
shift
case "$target" in
  -h|--help) usage; exit 0 ;;
  guest|data-plane) ;;
  *) bad "unknown target '$target' (guest or data-plane)" ;;
esac
workload=kmscube seconds=8 out=target/profile/$target
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --workload|--seconds|--out)
      [ $# -ge 2 ] || bad "$1 needs a value"
      case "$1" in
        --workload) workload=$2 ;;
        --seconds) seconds=$2 ;;
        --out) out=$2 ;;
      esac
      shift 2 ;;
    *) bad "unknown argument '$1'" ;;
  esac
done
case "$workload" in kmscube|glmark2) ;; *) bad "--workload must be kmscube or glmark2, not '$workload'" ;; esac
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] && [ "$seconds" -le 600 ] ||
  bad "--seconds must be a whole number from 1 to 600, not '$seconds'"

if ! command -v perf >/dev/null || ! perf --version >/dev/null 2>&1; then
  log "installing linux-perf"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install \
    -y -q --no-install-recommends linux-perf >&2
fi

mkdir -p "$out"
data=$out/perf.data
rate=499

if [ "$target" = data-plane ]; then
  log "building the data-plane benchmark"
  cargo build --release -p gpu-process >&2
  cargo bench -p integration --bench jailed_gpu --no-run >&2
  log "profiling cargo bench -p integration --bench jailed_gpu (about a minute)"
  started=$(date +%s.%N)
  DATA_PLANE_ROUNDS=${DATA_PLANE_ROUNDS:-3} perf record -q -F "$rate" -g -o "$data" -- \
    cargo bench -p integration --bench jailed_gpu >"$out/run.log" 2>&1
  seconds=$(echo "$(date +%s.%N) $started" | awk '{printf "%.1f", $1 - $2}')
else
  image=.cache/guest/linux
  [ -s "$image/vmlinuz" ] || bad "no guest image in $image (bash guest/build-linux-guest.sh)"
  log "building rayvmm and ray-gpu (release)"
  cargo build --release -p vmm -p gpu-process >&2
  append="console=ttyS0,115200 panic=-1 mitigations=off drm.edid_firmware=edid/1024x768.bin"
  append+=" vt.global_cursor_default=0 rayos.workload=$workload"
  # Long enough that the workload outlasts the sampling.
  [ "$workload" = kmscube ] && append+=" rayos.frames=100000" || append+=" rayos.duration=60"
  guest_log=$out/guest.log
  target/release/rayvmm run --kernel "$image/vmlinuz" --initrd "$image/initrd.img" \
    --append "$append" --memory 1G --cpus 2 --3d >"$guest_log" 2>&1 &
  vmm=$!
  trap 'kill "$vmm" 2>/dev/null || true; wait "$vmm" 2>/dev/null || true' EXIT
  log "waiting for $workload to draw (guest log: $guest_log)"
  # The guest names its display connector just before the workload starts (the workload's own
  # output is printed when it ends); three seconds more skip the start-up.
  marker='RAYOS-RESULT connector='
  for _ in $(seq 240); do
    grep -a -q "$marker" "$guest_log" && break
    kill -0 "$vmm" 2>/dev/null || bad "rayvmm ended before $workload started; see $guest_log"
    sleep 0.5
  done
  grep -a -q "$marker" "$guest_log" || bad "$workload did not start within 120 s; see $guest_log"
  sleep 3
  gpu=$(pgrep -P "$vmm" -f '^/ray-gpu' || pgrep -f '^/ray-gpu' | head -n1)
  qemu=$(pgrep -P "$vmm" qemu-system || true)
  [ -n "$gpu" ] && [ -n "$qemu" ] || bad "could not find ray-gpu and QEMU under rayvmm $vmm"
  log "profiling rayvmm $vmm, ray-gpu $gpu, QEMU $qemu for $seconds s"
  perf record -q -F "$rate" -g -o "$data" -p "$vmm,$gpu,$qemu" -- sleep "$seconds" 2>>"$out/perf.log"
fi

report=(perf report -i "$data" --stdio --no-children)
"${report[@]}" --sort comm,dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' >"$out/threads.txt"
"${report[@]}" --sort comm,sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' |
  sed -n "1,80p" >"$out/symbols.txt"
"${report[@]}" --sort sym -g caller,2,callee --percent-limit 2 2>/dev/null >"$out/callers.txt"
samples=$(perf report -i "$data" --stdio --no-children -n --sort comm -g none 2>/dev/null |
  awk '!/^#/ && NF >= 3 { n += $2 } END { print n + 0 }')
busy=$(awk -v n="$samples" -v r="$rate" -v s="$seconds" 'BEGIN { printf "%.2f", n / r / s }')

what=$target
[ "$target" = guest ] && what="guest ($workload, jailed)"
echo "profile of $what: $samples samples at $rate Hz over $seconds s = $busy busy cores"
echo "threads (share of samples):"
perf report -i "$data" --stdio --no-children --sort comm -g none 2>/dev/null | grep -v '^#' |
  grep -v "^$" | sed -n "1,12s/^/  /p"
echo "details: $out/threads.txt, $out/symbols.txt, $out/callers.txt"

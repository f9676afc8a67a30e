#!/usr/bin/env bash
# Soak: the 3D Linux guest runs kmscube and glmark2 round after round on the jailed GPU for
# MINUTES (default 30); every minute the resident memory (VmRSS) and open descriptors of
# rayvmm, QEMU and ray-gpu are sampled. Writes OUT/soak.csv, OUT/soak.png (memory and
# descriptors over time) and OUT/soak.md (first sample after warm-up against the last), and
# keeps the logs in OUT/logs/.
#
#   scripts/soak.sh [--minutes N] [--out DIR]      (default 30 minutes, target/soak)
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30
out=target/soak
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=${2:?--minutes needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$minutes" in ''|*[!0-9]*|0) echo "soak.sh: --minutes needs a positive integer, got '$minutes'" >&2; exit 2 ;; esac

mkdir -p "$out/logs"
echo "soak: setup (host packages, guest image, release build)" >&2
{
  bash scripts/setup-host.sh
  bash scripts/setup-guest-tools.sh
  bash guest/build-linux-guest.sh
  cargo build --release -p vmm -p gpu-process
} >"$out/logs/setup.log" 2>&1 || { echo "soak: setup failed; see $out/logs/setup.log" >&2; exit 1; }

seconds=$((minutes * 60))
append="console=ttyS0,115200 panic=-1 mitigations=off drm.edid_firmware=edid/1024x768.bin"
append+=" vt.global_cursor_default=0 rayos.workload=soak rayos.soak=$seconds rayos.frames=600"
append+=" rayos.duration=3"
target/release/rayvmm run --kernel .cache/guest/linux/vmlinuz --initrd .cache/guest/linux/initrd.img \
  --append "$append" --memory 1G --cpus 2 --3d \
  >"$out/logs/serial.log" 2>"$out/logs/rayvmm.log" &
vmm=$!
trap 'kill $vmm 2>/dev/null || true' EXIT INT TERM

pid_after() { sed -n "s/.*$1\([0-9][0-9]*\).*/\1/p" "$out/logs/rayvmm.log" | head -n1; }
for _ in $(seq 120); do
  [ -n "$(pid_after 'VM running: QEMU pid ')" ] && break
  kill -0 "$vmm" 2>/dev/null || break
  sleep 1
done
qemu=$(pid_after 'VM running: QEMU pid ')
gpu=$(pid_after '(pid ')
[ -n "$qemu" ] && [ -n "$gpu" ] || { echo "soak: the VM did not start; see $out/logs/rayvmm.log" >&2; exit 1; }
echo "soak: $minutes minutes of kmscube and glmark2 rounds (rayvmm $vmm, QEMU $qemu, ray-gpu $gpu)" >&2

sample() {  # minute, then rss_kib and fds for each process
  local row=$1
  for pid in "$vmm" "$qemu" "$gpu"; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo "")
    fds=""
    [ -n "$rss" ] && fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    row+=",${rss:-},$fds"
  done
  echo "$row"
}
echo "minute,rayvmm_rss_kib,rayvmm_fds,qemu_rss_kib,qemu_fds,gpu_rss_kib,gpu_fds" >"$out/soak.csv"
start=$(date +%s)
minute=0
while kill -0 "$vmm" 2>/dev/null; do
  sample "$minute" >>"$out/soak.csv"
  rounds=$(grep -ac '^RAYOS-RESULT soak_round=' "$out/logs/serial.log" || true)
  echo "soak: minute $minute, $rounds rounds done" >&2
  minute=$((minute + 1))
  next=$((start + minute * 60))
  while [ "$(date +%s)" -lt "$next" ] && kill -0 "$vmm" 2>/dev/null; do sleep 1; done
done
trap - EXIT INT TERM
wait "$vmm" && code=0 || code=$?
rounds=$(grep -ac '^RAYOS-RESULT soak_round=' "$out/logs/serial.log" || true)
done_line=$(grep -a '^RAYOS-DONE' "$out/logs/serial.log" | tail -n1 | tr -d '\r' || true)
python3 scripts/soak_report.py "$out/soak.csv" "$out/soak.png" "$out/soak.md" "$rounds" "$code" "$done_line"
cat "$out/soak.md"
[ "$code" -eq 0 ] && [ "$done_line" = "RAYOS-DONE status=ok" ]

#!/usr/bin/env bash
# Guest frame rates on the jailed GPU (rayvmm + ray-gpu, VirGL over vhost-user) against QEMU's
# in-process virgl (guest/run-reference.sh gl: virtio-gpu-gl-pci, -display sdl,gl=on on a private
# Xvfb), same Linux guest image, same kernel arguments for the workload, runs interleaved.
#
#   scripts/bench.sh [--rounds N] [--frames F] [--out DIR]
#
# Variants (each a real guest run):
#   jailed kmscube       target/release/rayvmm run ... --3d, rayos.workload=kmscube   kmscube_fps
#   in-process kmscube   guest/run-reference.sh gl --workload kmscube                 kmscube_fps
#   jailed glmark2       rayvmm run ... rayos.workload=glmark2                        glmark2_score
#   in-process glmark2   guest/run-reference.sh gl --workload glmark2                 glmark2_score
# Every round runs every variant once; odd rounds in the order above, even rounds reversed, so
# load drift on this shared machine hits all variants alike. Compare medians only.
#
# Output: a markdown table on stdout (also OUT/bench.md), OUT/bench.json (every run, medians,
# spreads, ratios, command lines), OUT/bench.png when python3 has matplotlib, and each run's
# full output in OUT/logs/<variant>-<round>.log. A run that yields no number counts as failed
# and the benchmark goes on. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

prog=bench.sh
usage() {
  cat <<'EOF'
usage: scripts/bench.sh [--rounds N] [--frames F] [--out DIR]

Guest frame rates, jailed GPU (rayvmm + ray-gpu) vs QEMU's in-process virgl, interleaved.

  --rounds N   rounds; each runs every variant once, order alternating (default 3)
  --frames F   kmscube frames per run (default 600)
  --out DIR    output directory (default target/bench): bench.md, bench.json,
               bench.png (if python3 has matplotlib), logs/<variant>-<round>.log
  -h, --help   this text

Variants: jailed kmscube, in-process kmscube, jailed glmark2, in-process glmark2.
Prints a markdown table: median, min-max and failures per variant, and the
jailed/in-process ratio of the medians per workload.
EOF
}
bad() {
  echo "$prog: $*" >&2
  echo "$prog: see scripts/bench.sh --help" >&2
  exit 2
}

rounds=3 frames=600 out=target/bench
while [ $# -gt 0 ]; do
  arg=$1
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --rounds|--frames|--out)
      [ $# -ge 2 ] || bad "$arg needs a value"
      val=$2
      shift ;;
    --rounds=*|--frames=*|--out=*) val=${arg#*=}; arg=${arg%%=*} ;;
    *) bad "unknown argument: $arg" ;;
  esac
  case "$arg" in
    --rounds|--frames)
      [[ "$val" =~ ^[1-9][0-9]{0,5}$ ]] || bad "$arg needs a positive integer, got '$val'"
      if [ "$arg" = --rounds ]; then rounds=$val; else frames=$val; fi ;;
    --out)
      [ -n "$val" ] || bad "--out needs a directory"
      out=$val ;;
  esac
  shift
done

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

# --- What the runs need (idempotent, as scripts/test.sh does) -------------------------------
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
logs=$out/logs
rm -f "$logs"/*.log "$out/runs.tsv" "$out/commands.tsv" "$out/bench.json" "$out/bench.md" \
  "$out/bench.png"

# step NAME CMD...: runs a setup step with its output in logs/setup-NAME.log; on failure shows
# the end of it and stops.
step() {
  local name=$1
  shift
  local slog=$logs/setup-$name.log t0=$SECONDS
  log "$name ..."
  if ! "$@" >"$slog" 2>&1; then
    tail -n 30 "$slog" >&2
    die "$name failed (full output: $slog)"
  fi
  if [ $((SECONDS - t0)) -ge 5 ]; then log "$name done ($((SECONDS - t0)) s)"; fi
}
step host-packages bash scripts/setup-host.sh
step guest-tools bash scripts/setup-guest-tools.sh
step guest-image bash guest/build-linux-guest.sh
step cargo-build cargo build --release -p vmm -p gpu-process
rayvmm=target/release/rayvmm
image=.cache/guest/linux
for f in "$rayvmm" target/release/ray-gpu "$image/vmlinuz" "$image/initrd.img"; do
  [ -e "$f" ] || die "$f missing after setup"
done
command -v python3 >/dev/null || die "python3 missing (scripts/setup-guest-tools.sh installs it)"

# --- The variants -----------------------------------------------------------------------------
# glmark2: the short scene set, the one /init (guest/linux/init) runs by default and therefore the
# one guest/run-reference.sh gets (it has no option for the list); given explicitly to rayvmm so
# both sides run the same scenes. ';' separates benchmarks, ':' their options.
glmark2_duration=5
glmark2_scenes='build;texture;shading:shading=phong'
kms_timeout=$((300 + frames / 2))
glm_timeout=600

append="console=ttyS0,115200 panic=-1 mitigations=off drm.edid_firmware=edid/1024x768.bin"
append+=" vt.global_cursor_default=0"
jailed=(timeout --kill-after=30)
jailed_args=(--memory 1G --cpus 2 --3d)
cmd_jailed_kmscube=("${jailed[@]}" "$kms_timeout" "$rayvmm" run --kernel "$image/vmlinuz"
  --initrd "$image/initrd.img"
  --append "$append rayos.workload=kmscube rayos.frames=$frames" "${jailed_args[@]}")
cmd_jailed_glmark2=("${jailed[@]}" "$glm_timeout" "$rayvmm" run --kernel "$image/vmlinuz"
  --initrd "$image/initrd.img"
  --append "$append rayos.workload=glmark2 rayos.duration=$glmark2_duration rayos.glmark2=$glmark2_scenes"
  "${jailed_args[@]}")
cmd_inproc_kmscube=(guest/run-reference.sh gl --workload kmscube --frames "$frames" --quiet
  --timeout "$kms_timeout")
cmd_inproc_glmark2=(guest/run-reference.sh gl --workload glmark2 --duration "$glmark2_duration"
  --quiet --timeout "$glm_timeout")

variants=(jailed-kmscube in-process-kmscube jailed-glmark2 in-process-glmark2)

# quote ARGS...: a shell-readable command line (plain words bare, others single-quoted).
quote() {
  local a s=""
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
      s+=" $a"
    else
      s+=" '${a//\'/\'\\\'\'}'"
    fi
  done
  echo "${s# }"
}

# command_of VARIANT ROUND: sets the array `cmd` to that run's command line. The in-process runs
# keep their serial console in logs/<variant>-<round>.serial.log (rayvmm prints it on stdout).
command_of() {
  case "$1" in
    jailed-kmscube) cmd=("${cmd_jailed_kmscube[@]}") ;;
    jailed-glmark2) cmd=("${cmd_jailed_glmark2[@]}") ;;
    in-process-kmscube) cmd=("${cmd_inproc_kmscube[@]}" --log "$logs/$1-$2.serial.log") ;;
    in-process-glmark2) cmd=("${cmd_inproc_glmark2[@]}" --log "$logs/$1-$2.serial.log") ;;
    *) die "no variant $1" ;;
  esac
}

metric_of() {
  case "$1" in
    *kmscube) echo kmscube_fps ;;
    *glmark2) echo glmark2_score ;;
  esac
}

# Stop the run in progress on Ctrl-C / TERM: `timeout` runs rayvmm in its own process group
# (out of the terminal's reach) and forwards TERM; run-reference.sh stops QEMU and Xvfb on TERM.
child=""
on_signal() {
  trap - INT TERM
  if [ -n "$child" ]; then
    log "interrupted: stopping the run in progress (pid $child)"
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit 130
}
trap on_signal INT TERM

runs=$out/runs.tsv
printf 'variant\tround\tposition\tmetric\tvalue\trc\twall_s\tstatus\tlog\tcommand\n' >"$runs"
for v in "${variants[@]}"; do
  command_of "$v" 1
  printf '%s\t%s\n' "$v" "$(quote "${cmd[@]}")" >>"$out/commands.tsv"
done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "$rounds round(s) x ${#variants[@]} variants, kmscube $frames frames, glmark2 ${glmark2_duration} s/scene; load average $load_start"

total=$((rounds * ${#variants[@]})) n=0
for round in $(seq "$rounds"); do
  order=("${variants[@]}")
  if [ $((round % 2)) = 0 ]; then
    order=()
    for ((i = ${#variants[@]} - 1; i >= 0; i--)); do order+=("${variants[i]}"); done
  fi
  pos=0
  for v in "${order[@]}"; do
    pos=$((pos + 1)) n=$((n + 1))
    command_of "$v" "$round"
    metric=$(metric_of "$v")
    runlog=$logs/$v-$round.log
    t0=$(date +%s.%N)
    rc=0
    "${cmd[@]}" </dev/null >"$runlog" 2>&1 &
    child=$!
    wait "$child" || rc=$?
    child=""
    wall=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}')
    value=$(tr -d '\r' <"$runlog" | grep -a -o "RAYOS-RESULT $metric=[0-9][0-9.]*" | tail -n1 |
      cut -d= -f2 || true)
    status=$(tr -d '\r' <"$runlog" | grep -a -o 'RAYOS-DONE status=[a-z]*' | tail -n1 |
      cut -d= -f2 || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$round" "$pos" "$metric" "$value" \
      "$rc" "$wall" "${status:-none}" "$runlog" "$(quote "${cmd[@]}")" >>"$runs"
    if [ -n "$value" ]; then
      log "[$n/$total] round $round $v: $metric=$value (${wall} s)"
    else
      log "[$n/$total] round $round $v: FAILED, no $metric (exit $rc, guest status ${status:-none}, ${wall} s; see $runlog)"
    fi
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

python3 scripts/bench_report.py --runs "$runs" --commands "$out/commands.tsv" --out "$out" \
  --rounds "$rounds" --frames "$frames" --glmark2-duration "$glmark2_duration" \
  --glmark2-scenes "$glmark2_scenes" --load-start "$load_start" --load-end "$load_end" \
  --started "$started"

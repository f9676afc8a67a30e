#!/usr/bin/env bash
# The benchmark suite, one command:
#  1. the data plane without a guest (cargo bench -p integration --bench jailed_gpu): the jailed
#     ray-gpu's small-command round trip against an eventfd ping-pong between two processes, its
#     TRANSFER_TO_HOST_2D bandwidth against memcpy, and jailed against the same device code
#     served unjailed in-process, interleaved rounds, ratios with targets;
#  2. the isolation cost (cargo bench -p vmm --bench spawn): spawn-to-Ready time, RSS, PSS and
#     open descriptors of the GPU process with 1, 2, 4 and 8 alive at once;
#  2b. with the recorded guests (scripts/record-guests.sh; recorded when guests run): replays
#     jailed against the same device unjailed (--bench replay), and the noisy-neighbour
#     scenarios of several VMs on one GPU (--bench neighbours);
#  3. guest frame rates on the jailed GPU (rayvmm + ray-gpu, VirGL over vhost-user) against
#     QEMU's in-process virgl (guest/run-reference.sh gl: virtio-gpu-gl-pci, -display sdl,gl=on
#     on a private Xvfb), same Linux guest image, same kernel arguments for the workload, runs
#     interleaved. Skipped with --no-guest.
#
#   scripts/bench.sh [--rounds N] [--frames F] [--out DIR] [--no-guest]
#
# Parts 1 and 2 run first (a minute or two); they write their tables into OUT/data_plane.md and
# OUT/isolation.md (JSON beside them: data_plane.json, isolation.json), their full output into
# OUT/logs/data-plane.log and OUT/logs/isolation.log. Their rounds: DATA_PLANE_ROUNDS (default 7)
# and ISOLATION_ROUNDS (default 5) in the environment. They use target/release/ray-gpu
# (RAY_GPU_BIN). A part that fails is reported, the others still run, and the script exits 1.
#
# Part 3's variants (each a real guest run):
#   jailed kmscube       target/release/rayvmm run ... --3d, rayos.workload=kmscube   kmscube_fps
#   in-process kmscube   guest/run-reference.sh gl --workload kmscube                 kmscube_fps
#   jailed glmark2       rayvmm run ... rayos.workload=glmark2                        glmark2_score
#   in-process glmark2   guest/run-reference.sh gl --workload glmark2                 glmark2_score
# Every round runs every variant once; odd rounds in the order above, even rounds reversed, so
# load drift on this shared machine hits all variants alike. Compare medians only.
#
# Part 3's output: a markdown table (OUT/bench.md), OUT/bench.json (every run, medians,
# spreads, ratios, command lines), OUT/bench.png when python3 has matplotlib, and each run's
# full output in OUT/logs/<variant>-<round>.log. A run that yields no number counts as failed
# and the benchmark goes on.
#
# At the end every table (data plane, isolation, guests) is printed on stdout and collected in
# OUT/summary.md. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

prog=bench.sh
usage() {
  cat <<'EOF'
usage: scripts/bench.sh [--rounds N] [--frames F] [--out DIR] [--no-guest]

The benchmark suite: the data plane without a guest (jailed ray-gpu vs an eventfd
ping-pong, memcpy, and the same device unjailed), the isolation cost (1, 2, 4, 8
GPU processes alive), then guest frame rates, jailed GPU (rayvmm + ray-gpu) vs
QEMU's in-process virgl, interleaved.

  --rounds N   guest rounds; each runs every variant once, order alternating (default 3)
  --frames F   kmscube frames per run (default 600)
  --out DIR    output directory (default target/bench): summary.md (every table),
               data_plane.md/.json, isolation.md/.json, bench.md, bench.json,
               bench.png (if python3 has matplotlib), logs/
  --no-guest   only the data plane and the isolation cost (no guest image, no QEMU)
  -h, --help   this text

Guest variants: jailed kmscube, in-process kmscube, jailed glmark2, in-process
glmark2; their table gives median, min-max and failures per variant, and the
jailed/in-process ratio of the medians per workload. DATA_PLANE_ROUNDS (default 7)
and ISOLATION_ROUNDS (default 5) set the rounds of the first two parts.
EOF
}
bad() {
  echo "$prog: $*" >&2
  echo "$prog: see scripts/bench.sh --help" >&2
  exit 2
}

rounds=3 frames=600 out=target/bench guests=1
while [ $# -gt 0 ]; do
  arg=$1
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --no-guest) guests=0; shift; continue ;;
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
# Only what this run writes again: --no-guest keeps an earlier guest report and its logs.
rm -f "$logs"/setup-*.log "$logs/data-plane.log" "$logs/isolation.log" "$out/data_plane.json" \
  "$out/data_plane.md" "$out/isolation.json" "$out/isolation.md" "$out/summary.md"
if [ "$guests" = 1 ]; then
  rm -f "$logs"/*.log "$out/runs.tsv" "$out/commands.tsv" "$out/bench.json" "$out/bench.md" \
    "$out/bench.png"
fi

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
if [ "$guests" = 1 ]; then
  step guest-tools bash scripts/setup-guest-tools.sh
  step guest-image bash guest/build-linux-guest.sh
  # The recorded guests the replay parts use (cached after the first time).
  step recordings bash scripts/record-guests.sh
fi
step cargo-build cargo build --release -p vmm -p gpu-process
# The benchmarks' own builds (the `bench` profile), so that their timed runs start at once.
step cargo-build-data-plane cargo bench --no-run -p integration --bench jailed_gpu
step cargo-build-isolation cargo bench --no-run -p vmm --bench spawn
step cargo-build-replay cargo bench --no-run -p integration --bench replay --bench neighbours
rayvmm=target/release/rayvmm
image=.cache/guest/linux
needed=("$rayvmm" target/release/ray-gpu)
[ "$guests" = 0 ] || needed+=("$image/vmlinuz" "$image/initrd.img")
for f in "${needed[@]}"; do
  [ -e "$f" ] || die "$f missing after setup"
done
if [ "$guests" = 1 ]; then
  command -v python3 >/dev/null || die "python3 missing (scripts/setup-guest-tools.sh installs it)"
fi

# Stop the run in progress on Ctrl-C / TERM: `timeout` runs rayvmm in its own process group
# (out of the terminal's reach) and forwards TERM; run-reference.sh stops QEMU and Xvfb on TERM;
# cargo passes TERM on to the benchmark it runs.
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

# --- Without a guest: the data plane and the isolation cost -----------------------------------
# quick_part NAME TABLE CMD...: runs one benchmark with its output in logs/NAME.log; it writes
# its markdown TABLE (and the JSON beside it) into $out. On failure shows the end of the log,
# records the failure and goes on.
failed_parts=()
quick_part() {
  local name=$1 table=$2
  shift 2
  local plog=$logs/$name.log t0=$SECONDS rc=0
  log "$name: $*"
  RAY_GPU_BIN=$PWD/target/release/ray-gpu BENCH_OUT=$out "$@" </dev/null >"$plog" 2>&1 &
  child=$!
  wait "$child" || rc=$?
  child=""
  if [ "$rc" = 0 ] && [ -s "$out/$table" ]; then
    log "$name done ($((SECONDS - t0)) s): $out/$table"
  else
    tail -n 30 "$plog" >&2
    log "$name FAILED (exit $rc, $((SECONDS - t0)) s; full output: $plog)"
    failed_parts+=("$name")
    printf '## %s\n\nFAILED (exit %s); full output: `%s`\n' "$name" "$rc" "$plog" >"$out/$table"
  fi
}
quick_part data-plane data_plane.md cargo bench -p integration --bench jailed_gpu
quick_part isolation isolation.md cargo bench -p vmm --bench spawn
# With the recorded guests: replays jailed against unjailed, and several VMs on one GPU.
replays=0
if [ -s .cache/recordings/kmscube.raygrec ] && [ -s .cache/recordings/glmark2.raygrec ]; then
  replays=1
  quick_part replay replay-llvmpipe.md cargo bench -p integration --bench replay
  quick_part neighbours neighbours.md cargo bench -p integration --bench neighbours
fi

# summary: every table on stdout and in OUT/summary.md; exit 1 when a part failed.
summary() {
  local parts=("$out/data_plane.md" "$out/isolation.md")
  [ "$replays" = 0 ] || parts+=("$out/replay-llvmpipe.md" "$out/neighbours.md")
  [ "$guests" = 0 ] || parts+=("$out/bench.md")
  local f first=1
  for f in "${parts[@]}"; do
    [ -e "$f" ] || continue
    [ "$first" = 1 ] || echo
    first=0
    cat "$f"
  done | tee "$out/summary.md"
  if [ ${#failed_parts[@]} -gt 0 ]; then
    log "failed: ${failed_parts[*]}"
    exit 1
  fi
}
if [ "$guests" = 0 ]; then
  summary
  exit 0
fi

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

# The guest report goes to OUT/bench.md (and bench.json, bench.png); summary prints it with the
# others.
python3 scripts/bench_report.py --runs "$runs" --commands "$out/commands.tsv" --out "$out" \
  --rounds "$rounds" --frames "$frames" --glmark2-duration "$glmark2_duration" \
  --glmark2-scenes "$glmark2_scenes" --load-start "$load_start" --load-end "$load_end" \
  --started "$started" >/dev/null
summary

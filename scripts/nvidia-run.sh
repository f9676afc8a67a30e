#!/usr/bin/env bash
# Runs on the NVIDIA GPU host (the `device` tool's H200), from the repository root, with
# .devcarry/ and .gl/ from scripts/nvidia-pack.sh carried along. Steps (default: all):
#   setup    install the carried libraries; driver, GPU and Mesa found there -> gpu.txt
#   report   rayvmm sandbox-report --gpu /dev/nvidia0 -> sandbox-report.txt
#   learn    trap-and-report replays under a copy of gpu_nvidia.policy: each refused call is
#            added with its exact arguments and the replays run again until nothing is
#            refused (at most LEARN_ROUNDS) -> learned.txt, learned.policy
#   replay   each recording replayed jailed on /dev/nvidia0 (kill on refusal), frames
#            compared with the recorded llvmpipe frames within TOLERANCE -> replay-*.json
#   probes   escape probes from a process rendering on the GPU -> probes.txt
#   bench    the replay benchmark: jailed vs unjailed on the GPU, and on llvmpipe where the
#            host has Mesa -> replay-nvidia.{md,json}, replay-llvmpipe-h200.{md,json}
#   neighbours  the noisy-neighbour benchmark with every VM on the GPU (NEIGHBOURS_SECONDS,
#            default 8) -> neighbours.{md,json,png}, neighbours-frames.png
# Output: $OUT (the device tool's) or target/nvidia-run/; a summary on stdout.
#
#   bash scripts/nvidia-run.sh [STEP...]
set -uo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-target/nvidia-run}
mkdir -p "$out"
carry=.devcarry
bin=$carry/bin
gpu=/dev/nvidia0
export RAYOS_POLICY_DIR=$PWD/policies
recordings="kmscube glmark2"
steps=${*:-setup report learn replay probes bench neighbours}
# The recordings were made on llvmpipe: across renderers, frames match when every channel is
# within TOLERANCE of the recorded one on all but OUTLIERS of the pixels.
TOLERANCE=${TOLERANCE:-16}
OUTLIERS=${OUTLIERS:-0.0001}

has_step() { [[ " $steps " == *" $1 "* ]]; }
say() { echo "== $*"; }

if has_step setup; then
  say setup
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  cp -n "$carry"/libs/* /usr/lib/x86_64-linux-gnu/ 2>/dev/null
  ldconfig
  {
    date -u +%Y-%m-%dT%H:%MZ
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    uname -r
    nproc
    ls /dev/nvidia* | tr '\n' ' '; echo
    echo "mesa egl vendor: $(ls /usr/share/glvnd/egl_vendor.d/ 2>/dev/null | tr '\n' ' ')"
    echo "mesa dri: $(ls /usr/lib/x86_64-linux-gnu/dri/ 2>/dev/null | head -n5 | tr '\n' ' ')"
  } | tee "$out/gpu.txt"
fi

if has_step report; then
  say "sandbox report on $gpu"
  start=$EPOCHREALTIME
  "$bin/rayvmm" sandbox-report --gpu "$gpu" --gpu-binary "$bin/ray-gpu" >"$out/sandbox-report.txt" 2>&1
  rc=$?
  echo "exit $rc in $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s" | tee -a "$out/sandbox-report.txt"
  grep -E "renderer|Policy|policy" "$out/sandbox-report.txt" | head -n5
fi

if has_step learn; then
  say "learning what the NVIDIA driver needs after the filter (trap and report)"
  dir=$out/learn
  mkdir -p "$dir"
  cp policies/x86_64/*.policy "$dir/"
  policy=$dir/gpu_nvidia.policy
  : >"$out/learned.txt"
  for round in $(seq 1 "${LEARN_ROUNDS:-40}"); do
    refused=""
    for rec in $recordings; do
      msg=$("$bin/rayvmm" replay --gpu "$gpu" --ray-gpu "$bin/ray-gpu" --action trap \
        --policy "$policy" "$carry/recordings/$rec.raygrec" 2>&1)
      refused=$(grep -o 'filter refused [a-z0-9_]*([^)]*)' <<<"$msg" | head -n1 | sed 's/^filter refused //')
      [ -n "$refused" ] && break
      grep -q '^frames:' <<<"$msg" || { echo "$rec: replay failed without a refused call:"; echo "$msg" | tail -n3; }
    done
    [ -z "$refused" ] && { echo "round $round: nothing refused"; break; }
    echo "round $round ($rec): $refused" | tee -a "$out/learned.txt"
    name=${refused%%(*}
    args=${refused#*(}; args=${args%)}
    IFS=', ' read -r -a a <<<"$args"
    case $name in
      ioctl) rule="ioctl: arg1 == ${a[1]}" ;;
      openat) rule="openat: arg2 == ${a[2]}" ;;
      mmap|mprotect) rule="$name: arg2 == ${a[2]}" ;;
      *) rule="$name: 1" ;;
    esac
    printf '# learned (%s): %s\n%s\n' "$rec" "$refused" "$rule" >>"$policy"
  done
  cp "$policy" "$out/learned.policy"
fi

if has_step replay; then
  say "replays on $gpu (kill on refusal, frames within $TOLERANCE of the recorded llvmpipe ones)"
  for rec in $recordings; do
    "$bin/rayvmm" replay --json --gpu "$gpu" --ray-gpu "$bin/ray-gpu" --tolerance "$TOLERANCE" --outliers "$OUTLIERS" \
      "$carry/recordings/$rec.raygrec" >"$out/replay-$rec.json" 2>"$out/replay-$rec.err"
    echo "$rec: exit $? $(grep -E '"(fps|frames_match|gl_renderer|spawn_to_ready_seconds|gpu_process_peak_rss_mib)"' "$out/replay-$rec.json" | tr -d ' \n')"
    grep -o '"max_difference": [0-9]*\|"differing_pixels": [0-9]*' "$out/replay-$rec.json" | sort | uniq -c | tr '\n' ' '; echo
    tail -n2 "$out/replay-$rec.err"
  done
fi

if has_step probes; then
  say "escape probes from a process rendering on $gpu"
  : >"$out/probes.txt"
  for t in open_unbound_nvidia_gpu open_nvidia_uvm_tools open_nvidia_caps open_proc_driver_nvidia \
      nvidia_ioctl_off_the_list nvidia_ioctl_on_the_list kvm_create_vm drm_set_master \
      open_etc_shadow mmap_exec mmap_rwx socket_af_inet ptrace_attach_supervisor; do
    line=$("$bin/rayvmm" probe --technique "$t" --gpu "$gpu" --gpu-binary "$bin/ray-gpu-probe" 2>&1 | tail -n1)
    echo "$t: $line" | tee -a "$out/probes.txt"
  done
fi

if has_step bench; then
  say "replay benchmark on $gpu: jailed vs unjailed"
  recs="$PWD/$carry/recordings/kmscube.raygrec:$PWD/$carry/recordings/glmark2.raygrec"
  REPLAY_RECORDINGS=$recs REPLAY_ROUNDS=${ROUNDS:-5} REPLAY_GPU=$gpu REPLAY_LABEL=nvidia \
    REPLAY_TOLERANCE=$TOLERANCE REPLAY_OUTLIERS=$OUTLIERS \
    RAYVMM_BIN=$PWD/$bin/rayvmm BENCH_OUT=$out \
    __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json \
    __GL_SHADER_DISK_CACHE=0 \
    "$bin/replay-bench" 2>&1 | tail -n 12
  if [ -f "$carry/mesa.tar.xz" ] && [ ! -f /usr/share/glvnd/egl_vendor.d/50_mesa.json ]; then
    say "unpacking Debian's Mesa (llvmpipe) carried for the CPU comparison"
    tar -C / -xJf "$carry/mesa.tar.xz" && ldconfig
  fi
  if [ -f /usr/share/glvnd/egl_vendor.d/50_mesa.json ]; then
    say "replay benchmark on llvmpipe, this host's CPUs"
    REPLAY_RECORDINGS=$recs REPLAY_ROUNDS=${ROUNDS:-5} REPLAY_LABEL=llvmpipe-h200 \
    REPLAY_TOLERANCE=$TOLERANCE REPLAY_OUTLIERS=$OUTLIERS \
      RAYVMM_BIN=$PWD/$bin/rayvmm BENCH_OUT=$out \
      __EGL_VENDOR_LIBRARY_FILENAMES=/usr/share/glvnd/egl_vendor.d/50_mesa.json \
      "$bin/replay-bench" 2>&1 | tail -n 12
  else
    echo "llvmpipe: this host has no Mesa EGL vendor (50_mesa.json): not measured"
  fi
fi

if has_step neighbours; then
  say "noisy-neighbour benchmark on $gpu"
  NEIGHBOURS_GPU=$gpu NEIGHBOURS_SECONDS=${NEIGHBOURS_SECONDS:-8} \
    NEIGHBOURS_RECORDINGS=$PWD/$carry/recordings \
    NEIGHBOURS_TOLERANCE=$TOLERANCE NEIGHBOURS_OUTLIERS=$OUTLIERS \
    RAYVMM_BIN=$PWD/$bin/rayvmm BENCH_OUT=$out \
    "$bin/neighbours-bench" 2>&1 | tail -n 45
fi

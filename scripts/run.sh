#!/usr/bin/env bash
# The project's main job. With no arguments it:
#   1. builds what is missing: host packages, QEMU 10 + guest tools, the Linux guest image
#      (cached under .cache/guest/), and the release binaries, showing the setup scripts'
#      progress lines;
#   2. prints a summary of the sandbox report of the jailed GPU process (`rayvmm sandbox-report`);
#   3. boots the Linux guest under `rayvmm run` with its GPU served by the jailed ray-gpu
#      (VirGL 3D), runs kmscube in it, one line per phase (VM started, guest booted, GPU driver
#      bound, kmscube running, done), and saves screenshots under target/run/ (kmscube.png: the
#      richest frame captured while kmscube rendered; final.png: the screen at power-off);
#   4. prints the result: the guest's GL renderer, kmscube's frame rate, screenshots, logs.
# On success that is one screen. The rest goes to files under target/run/: setup.log (step 1),
# sandbox-report.txt, serial.log (the guest's serial console), rayvmm.log (rayvmm's messages).
# On failure it says which step or phase failed, the exit status, the last lines of the log
# concerned and where the logs are, and exits 1.
#
# Options (anything else goes to `rayvmm run`, e.g. `--vnc 127.0.0.1:0`, `--display 800x600`):
#   -v, --verbose   also show everything as it comes: setup output, the full sandbox report,
#                   the serial console and rayvmm's messages
#   -h, --help      this text
# Environment: RAYOS_OUT (default target/run), RAYOS_FRAMES (kmscube frames, default 600),
# RAYOS_TIMEOUT (seconds the guest run may take before it is stopped, default 900; 0: no limit).
set -euo pipefail
cd "$(dirname "$0")/.."

verbose=0
vmm_args=()
for arg in "$@"; do
  case "$arg" in
    -v | --verbose) verbose=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *) vmm_args+=("$arg") ;;
  esac
done

out=${RAYOS_OUT:-target/run}
frames=${RAYOS_FRAMES:-600}
timeout=${RAYOS_TIMEOUT:-900}
rayvmm=target/release/rayvmm
image=.cache/guest/linux
mkdir -p "$out"
setup_log=$out/setup.log
report=$out/sandbox-report.txt
serial=$out/serial.log
events=$out/rayvmm.log
: >"$setup_log"

# ---- failure reports (on stderr) ----------------------------------------------------------

# Lines of rayvmm.log that say nothing about a failure: one per screenshot taken.
noise='^rayvmm: screenshot [0-9]*x[0-9]* (.*) written to '

# show_tail FILE N WHAT: the last N lines of FILE (without screenshot lines), indented.
show_tail() {
  local lines
  lines=$(tr -d '\r' <"$1" | grep -av "$noise" | tail -n "$2" || true)
  if [ -z "$lines" ]; then
    echo "--- $1 ($3) is empty"
  else
    echo "--- last lines of $1 ($3):"
    echo "$lines" | sed 's/^/    /'
  fi
}

# failed WHAT: the headline of a failure report.
failed() { echo "run.sh: FAILED: $*"; }

# ---- 1. setup ------------------------------------------------------------------------------

# Shows the setup scripts' own progress lines ("setup-host: ..."), paths relative to here and
# the guest image's input hash shortened; apt, debootstrap and cargo output stays in the log.
root_re=$(printf '%s/' "$PWD" | sed 's/[][\.*^$|]/\\&/g')
progress_lines() {
  sed -u -n -e "s|$root_re||g" -e 's/(inputs \([0-9a-f]\{12\}\)[0-9a-f]*)/(inputs \1...)/' \
    -e '/^\(setup-host\|setup-guest-tools\|build-linux-guest\): /p'
}

# step WHAT COMMAND...: runs one setup step, its whole output appended to setup.log.
partial_line=0 # 1 while a line of ours waits for its end
step() {
  local what=$1 rc=0
  shift
  echo "== run.sh: $what: $*" >>"$setup_log"
  if [ "$verbose" = 1 ]; then
    "$@" 2>&1 | tee -a "$setup_log" || rc=$?
  else
    "$@" 2>&1 | tee -a "$setup_log" | progress_lines || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    [ "$partial_line" = 0 ] || echo
    {
      failed "$what ($* exited with status $rc)"
      show_tail "$setup_log" 20 "setup output"
      echo "run.sh: full setup output: $setup_log"
    } >&2
    exit 1
  fi
}

echo "== setup (full output: $setup_log)"
step "host packages" bash scripts/setup-host.sh
step "QEMU and guest tools" bash scripts/setup-guest-tools.sh
# setup-guest-tools.sh just ran: the image build need not run it again.
RAYOS_GUEST_TOOLS_CHECKED=1 step "guest image" bash guest/build-linux-guest.sh
t=$SECONDS
setup_lines=$(wc -l <"$setup_log")
if [ "$verbose" = 1 ]; then
  echo "cargo: building the release binaries"
else
  printf 'cargo: release binaries rayvmm and ray-gpu (a first build takes several minutes) ... '
  partial_line=1
fi
step "release binaries" cargo build --release -p vmm -p gpu-process
partial_line=0
compiled=$(tail -n +$((setup_lines + 1)) "$setup_log" | grep -c '^ *Compiling ' || true)
if [ "$compiled" -eq 0 ]; then
  echo "up to date"
else
  echo "compiled $compiled crate$([ "$compiled" -eq 1 ] || echo s) in $((SECONDS - t)) s"
fi

# ---- 2. sandbox report ---------------------------------------------------------------------

echo "== sandbox report of the jailed GPU process (in full: $report)"
rc=0
"$rayvmm" sandbox-report >"$report" 2>&1 || rc=$?
[ "$verbose" = 1 ] && cat "$report"
json=$out/sandbox-report.json
[ "$rc" -ne 0 ] || "$rayvmm" sandbox-report --json >"$json" 2>>"$report" || rc=$?
if [ "$rc" -ne 0 ]; then
  {
    failed "sandbox report ($rayvmm sandbox-report exited with status $rc)"
    show_tail "$report" 20 "its output"
  } >&2
  exit 1
fi
# One line per kind of confinement, from the JSON form of the report.
python3 - "$json" <<'EOF' || echo "  (no summary: see $report)"
import json, sys

r = json.load(open(sys.argv[1]))
st, inside, pol = r["status"], r["inside"], r["policy"]

def size(n):
    if n is None:
        return "unlimited"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return str(n)

def limit(name):
    for n, soft, _hard in inside["rlimits"]:
        if n == name:
            return soft
    return None

own = [n["kind"] for n in r["namespaces"] if n["child"] != n["supervisor"]]
shared = [n["kind"] for n in r["namespaces"] if n["child"] == n["supervisor"]]
ns = "own " + ", ".join(own) if own else "none of its own"
if shared:
    ns += "; SHARED with rayvmm: " + ", ".join(shared)

caps = {k: st[f"cap_{k}"] for k in ("eff", "prm", "inh", "bnd", "amb")}
caps_text = "none (all five sets empty)" if not any(caps.values()) else " ".join(
    f"{k} {v:016x}" for k, v in caps.items())

fds, prev = [], None
for fd, target in inside["fds"]:
    what = "socket" if target.startswith("socket:") else target
    if prev and prev[1] == what and prev[0][-1] == fd - 1:
        prev[0].append(fd)
    else:
        prev = ([fd], what)
        fds.append(prev)
fds_text = ", ".join(
    (f"{f[0]}-{f[-1]}" if len(f) > 1 else f"{f[0]}") + f" {what}" for f, what in fds)

files = inside["files"]
writable = sum(1 for f in files if f["writable"])
seccomp = {0: "OFF", 1: "strict mode", 2: "filter"}.get(st["seccomp"], str(st["seccomp"]))
host_ids = sorted(set(st["uids"])), sorted(set(st["gids"]))
core = limit("RLIMIT_CORE")

rows = [
    ("process", f"pid {st['ns_pids'][-1]} inside (host pid {r['pid']}), host uid "
                f"{'/'.join(map(str, host_ids[0]))} gid {'/'.join(map(str, host_ids[1]))}"),
    ("namespaces", ns),
    ("seccomp", f"{seccomp}: {pol['name']}, {pol['syscalls']} system calls allowed, any other: "
                f"{pol['action']}"),
    ("privileges", f"no_new_privs {'yes' if st['no_new_privs'] else 'NO'}; capabilities "
                   f"{caps_text}; Landlock {'enforced' if r['landlock_enforced'] else 'not enforced'}"),
    ("files", f"{len(files)} paths visible, {writable} writable; descriptors {fds_text}"),
    ("limits", f"{limit('RLIMIT_NOFILE')} open files, {limit('RLIMIT_NPROC')} processes, "
               f"{size(limit('RLIMIT_FSIZE'))} per file, {size(limit('RLIMIT_DATA'))} data, "
               f"core dumps {'off' if core == 0 else size(core)}"),
    ("cgroup", r["cgroup"]),
]
for name, text in rows:
    print(f"  {name:<11} {text}")
EOF

# ---- 3. the guest run ----------------------------------------------------------------------

rm -f "$out"/final*.png "$out"/kmscube.png
append="console=ttyS0,115200 panic=-1 mitigations=off drm.edid_firmware=edid/1024x768.bin"
append+=" vt.global_cursor_default=0 rayos.workload=kmscube rayos.frames=$frames"

if [ "$verbose" = 1 ]; then
  echo "== kmscube in a Linux guest on the jailed GPU (serial console follows; also in $serial)"
else
  echo "== kmscube in a Linux guest on the jailed GPU (serial console: $serial)"
fi
: >"$serial"
: >"$events"
cmd=("$rayvmm" run --kernel "$image/vmlinuz" --initrd "$image/initrd.img" --append "$append"
  --memory 1G --cpus 2 --3d --screenshot "$out/final.png" "${vmm_args[@]}")
if [ "$verbose" = 1 ]; then
  "${cmd[@]}" </dev/null > >(tee -a "$serial") 2> >(tee -a "$events" >&2) &
else
  "${cmd[@]}" </dev/null >>"$serial" 2>>"$events" &
fi
pid=$!
t0=$SECONDS
stopping="" # why run.sh stopped the VM itself, if it did
trap 'stopping="interrupted"; kill -TERM "$pid" 2>/dev/null || true' INT TERM

phase() { printf '[%3d s] %s\n' $((SECONDS - t0)) "$*"; }
# The serial console, carriage returns dropped.
console() { tr -d '\r' <"$serial"; }
# result KEY: the guest's last `RAYOS-RESULT KEY=VALUE` line's value.
result() { console | sed -n "s/^RAYOS-RESULT $1=//p" | tail -n1; }
# event PATTERN: the group \(...\) of rayvmm's message matching `rayvmm: PATTERN`.
event() { sed -n "s/^rayvmm: $1/\1/p" "$events" | tail -n1; }

# How far the guest run got: 0 starting the VM, 1 booting the kernel, 2 binding the GPU
# driver, 3 running kmscube, 4 done (RAYOS-DONE printed), powering off.
stage=0
stage_names=("starting the VM" "booting the guest kernel" "binding the GPU driver (virtio_gpu)"
  "running kmscube" "powering off")
vnc_lines=0
accel=""

done_stage=0 # the stage the guest was in when it printed RAYOS-DONE

# Prints one line for each phase reached since the last call, from the two logs. (Patterns are
# anchored at the start of a line: the serial console's lines end in a carriage return.)
progress() {
  if [ $stage -eq 0 ] && grep -aq '^rayvmm: VM running' "$events"; then
    accel=$(event 'accelerator: \([a-z]*\).*')
    phase "VM started: $(event 'engine: \(QEMU [^ ]*\).*') under ${accel^^}," \
      "GPU process ray-gpu jailed (pid $(event 'GPU: .*(pid \([0-9]*\), jailed.*'))"
    stage=1
  fi
  # /init prints RAYOS-INIT, then its uptime, then the kernel's version: wait for the version
  # (or anything later, should it be missing).
  if [ $stage -eq 1 ] && grep -aq -e '^RAYOS-RESULT kernel=' -e '^RAYOS-RESULT drm_' \
    -e '^RAYOS-DONE ' "$serial"; then
    phase "guest booted: Linux $(result kernel), /init started at $(result init_uptime) s guest time"
    stage=2
  fi
  if [ $stage -eq 2 ] && grep -aq '^RAYOS-RESULT drm_features=' "$serial"; then
    phase "GPU driver bound: virtio_gpu, $(result drm_features)"
    phase "kmscube running: $frames frames"
    stage=3
  fi
  if [ $stage -ge 1 ] && [ $stage -lt 4 ] && grep -aq '^RAYOS-DONE ' "$serial"; then
    phase "guest done: $(console | sed -n 's/^RAYOS-DONE //p' | tail -n1), powering off"
    done_stage=$stage
    stage=4
  fi
  # VNC: where to watch, and viewers coming and going.
  local n
  n=$(grep -ac '^rayvmm: VNC ' "$events" || true)
  if [ "$n" -gt "$vnc_lines" ]; then
    grep -a '^rayvmm: VNC ' "$events" | sed -n "$((vnc_lines + 1)),${n}p" |
      while IFS= read -r line; do phase "${line#rayvmm: }"; done
    vnc_lines=$n
  fi
}

# Watch the run. While kmscube renders, take a screenshot every second (SIGUSR1: rayvmm writes
# final-1.png, final-2.png ...): kmscube gives the screen back to the console when it ends.
while kill -0 "$pid" 2>/dev/null; do
  sleep 1 || true
  progress
  if [ $stage -eq 3 ]; then
    kill -USR1 "$pid" 2>/dev/null || true
  fi
  if [ -z "$stopping" ] && [ "$timeout" -gt 0 ] && [ $((SECONDS - t0)) -ge "$timeout" ]; then
    stopping="timed out after $timeout s (RAYOS_TIMEOUT)"
    phase "$stopping: stopping the VM"
    kill -TERM "$pid" 2>/dev/null || true
  fi
done
rc=0
wait "$pid" || rc=$?
trap - INT TERM
sleep 0.2 # let tee finish
progress
# rayvmm's last word: `rayvmm: guest shut down (...) (exit code 0)`, or `error: ...`.
how=$(sed -n -e 's/^rayvmm: \(.*\) (exit code [0-9]*)$/\1/p' -e 's/^error: //p' "$events" | tail -n1)
done_line=$(console | grep -a '^RAYOS-DONE ' | tail -n1 || true)
ok=0
[ "$rc" -ne 0 ] || [ "$done_line" != "RAYOS-DONE status=ok" ] || [ -n "$stopping" ] || ok=1
if [ "$ok" = 1 ]; then
  phase "VM stopped: $how; rayvmm exit code $rc"
elif [ "$stage" -gt 0 ]; then
  phase "VM stopped; rayvmm exit code $rc"
fi

best=$(sed -n 's/.*screenshot [0-9]*x[0-9]* (\([0-9]*\) colours) written to \(.*\) (source: .*/\1 \2/p' "$events" |
  grep -v " $out/final.png\$" | sort -n -k1,1 | tail -n1 | cut -d' ' -f2- || true)
if [ -n "$best" ] && [ -f "$best" ]; then
  cp "$best" "$out/kmscube.png"
fi

logs="$serial (serial console), $events (rayvmm), $setup_log (setup), $report"
if [ "$ok" = 0 ]; then
  {
    if [ -n "$done_line" ] && [ "$done_line" != "RAYOS-DONE status=ok" ]; then
      failed "${stage_names[$done_stage]}: the guest reported ${done_line#RAYOS-DONE }" \
        "(rayvmm exit code $rc)"
    else
      failed "${stage_names[$stage]}: ${stopping:-${how:-rayvmm ended}} (rayvmm exit code $rc)"
    fi
    show_tail "$events" 8 "rayvmm's messages"
    [ "$stage" -eq 0 ] || show_tail "$serial" 15 "serial console"
    echo "run.sh: logs: $logs"
  } >&2
  exit 1
fi

# ---- 4. the result -------------------------------------------------------------------------

fps=$(result kmscube_fps)
if [[ $fps =~ ^[0-9]+(\.[0-9]+)?$ ]]; then fps=$(LC_ALL=C printf '%.1f' "$fps"); fi
shots="$out/final.png (at power-off)"
if [ -f "$out/kmscube.png" ]; then
  shots="$out/kmscube.png (while rendering), $shots"
fi
echo "== result"
echo "GL renderer:  $(result gl_renderer)"
echo "kmscube:      $(result kmscube_frames) frames in $(result kmscube_seconds) s = $fps fps" \
  "(the guest's own measurement, under ${accel^^})"
echo "screenshots:  $shots"
echo "logs:         $serial (serial console), $events (rayvmm)"
echo "              $setup_log (setup), $report (sandbox report)"

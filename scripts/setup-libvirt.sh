#!/usr/bin/env bash
# Installs and starts what running a VM under libvirt needs here, idempotently:
#   - QEMU 10 and bookworm-backports (scripts/setup-guest-tools.sh: bookworm's QEMU 7.2
#     refuses vhost-user under TCG);
#   - libvirt 11.3 from bookworm-backports, the minimal packages: the daemon, its QEMU driver,
#     virtlogd, virsh. Each is named with /bookworm-backports so that only libvirt comes from
#     backports (`-t bookworm-backports` would also pull systemd from there);
#   - the libvirt-qemu user and group libvirt runs QEMU and vhost-user backends as (made by
#     libvirt-daemon-system's scripts, which the minimal set leaves out);
#   - virtlogd and libvirtd, started by hand as daemons (no systemd on these machines) when
#     they are not already running.
# Prints one line per step; safe to run again.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
MIN_LIBVIRT_VERSION='11.3'
QEMU_USER=libvirt-qemu
# The minimal libvirt set, with the libvirt libraries it needs at the same version.
packages=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  libvirt-daemon-log libvirt-daemon-common libvirt-common libvirt0
)

log() { echo "setup-libvirt: $*"; }
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

installed_version() {
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
    awk '$1=="install" && $3=="installed" {print $4}' || true
}

bash "$repo/scripts/setup-guest-tools.sh" >/dev/null

missing=()
for p in "${packages[@]}"; do
  v=$(installed_version "$p")
  if [ -z "$v" ] || ! dpkg --compare-versions "$v" ge "$MIN_LIBVIRT_VERSION"; then
    missing+=("$p/bookworm-backports")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
log "libvirt $(installed_version libvirt-daemon) present"

if ! getent group "$QEMU_USER" >/dev/null; then
  log "adding group $QEMU_USER"
  "${sudo_cmd[@]}" groupadd --system "$QEMU_USER"
fi
if ! getent passwd "$QEMU_USER" >/dev/null; then
  log "adding user $QEMU_USER"
  "${sudo_cmd[@]}" useradd --system --gid "$QEMU_USER" --home-dir /var/lib/libvirt \
    --no-create-home --shell /usr/sbin/nologin "$QEMU_USER"
fi

# Whether the daemon whose pid file is $1 runs (the pid file's process has the name $2).
running() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

start_daemon() {
  local name=$1 pidfile=$2
  if running "$pidfile" "$name"; then
    log "$name running (pid $(cat "$pidfile"))"
    return
  fi
  "${sudo_cmd[@]}" "/usr/sbin/$name" --daemon
  for _ in $(seq 50); do
    running "$pidfile" "$name" && break
    sleep 0.1
  done
  if ! running "$pidfile" "$name"; then
    log "error: $name did not start (no live pid in $pidfile)" >&2
    exit 1
  fi
  log "$name started (pid $(cat "$pidfile"))"
}

start_daemon virtlogd /run/virtlogd.pid
start_daemon libvirtd /run/libvirtd.pid

# libvirtd answers once its socket is up.
for _ in $(seq 100); do
  "${sudo_cmd[@]}" virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.1
done
if ! "${sudo_cmd[@]}" virsh -c qemu:///system version >/dev/null 2>&1; then
  log "error: libvirtd does not answer on qemu:///system" >&2
  exit 1
fi
log "qemu:///system answers ($("${sudo_cmd[@]}" virsh -c qemu:///system version | awk '/hypervisor/ {print $NF}' | head -n1 | sed 's/^/QEMU /'))"

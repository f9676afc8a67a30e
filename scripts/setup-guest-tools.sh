#!/usr/bin/env bash
# Installs what building and running RayOS test guests needs, idempotently:
#   - QEMU 10 (qemu-system-x86, qemu-system-gui, the opengl display modules) from
#     bookworm-backports: bookworm's QEMU 7.2 refuses vhost-user under TCG (../shared/FACTS.md);
#   - OVMF (UEFI firmware), debootstrap, zstd, cpio, kmod (guest image build);
#   - Xvfb + xauth + Mesa's DRI drivers (the GL display for in-process virgl runs), xwd and
#     xwininfo (grabbing that display, where QMP screendump has no surface);
#   - python3 (the small QMP client and helpers in guest/);
#   - real VNC clients for the tests of rayvmm's VNC server (integration/tests/guest_vnc.rs):
#     Debian's vncsnapshot (C, RFB 3.3, saves a JPEG), and vncdotool (Python, from PyPI, pinned)
#     in a virtualenv at .cache/vnc-clients/venv (Debian's python3 and python3-venv).
# When everything is already installed at the right versions, apt and pip are not touched.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
VNC_VENV=$repo/.cache/vnc-clients/venv
VNCDOTOOL_VERSION=1.4.2
VNC_REQUIREMENTS=$repo/guest/vnc-clients.txt

BACKPORTS_SOURCE=/etc/apt/sources.list.d/bookworm-backports.sources
MIN_QEMU_VERSION='1:10.0'

# Packages taken from bookworm-backports (`-t bookworm-backports`).
bpo_packages=(qemu-system-x86 qemu-system-gui qemu-system-modules-opengl qemu-utils)
# Packages taken from bookworm itself.
packages=(
  ovmf debootstrap zstd cpio kmod
  xvfb xauth x11-apps x11-utils libgl1-mesa-dri libegl-mesa0
  python3 python3-venv ca-certificates
  vncsnapshot
)

log() { echo "setup-guest-tools: $*"; }

installed_version() {
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
    awk '$1=="install" && $3=="installed" {print $4}' || true
}

missing=()
missing_bpo=()
for p in "${packages[@]}"; do
  [ -n "$(installed_version "$p")" ] || missing+=("$p")
done
for p in "${bpo_packages[@]}"; do
  v=$(installed_version "$p")
  if [ -z "$v" ] || ! dpkg --compare-versions "$v" ge "$MIN_QEMU_VERSION"; then
    missing_bpo+=("$p")
  fi
done

# vncdotool and its dependencies, pinned (guest/vnc-clients.txt), in its own virtualenv (Debian has no package of it). Made with Debian's
# python3 (/usr/bin/python3, whose venv module python3-venv provides), not whatever python3
# comes first on PATH. Skipped when the venv already has vncdo at that version.
install_vnc_clients() {
  # The venv records the pin file it was made from; a changed pin file remakes it.
  local want have=""
  want=$(sha256sum "$VNC_REQUIREMENTS" | cut -d' ' -f1)
  if [ -x "$VNC_VENV/bin/vncdo" ] && [ -f "$VNC_VENV/requirements.sha256" ]; then
    have=$(cat "$VNC_VENV/requirements.sha256")
  fi
  if [ "$have" = "$want" ]; then
    log "vncdotool $VNCDOTOOL_VERSION present ($VNC_VENV, pins unchanged)"
    return
  fi
  log "installing vncdotool==$VNCDOTOOL_VERSION and its pinned dependencies into $VNC_VENV"
  rm -rf "$VNC_VENV"
  mkdir -p "$(dirname "$VNC_VENV")"
  /usr/bin/python3 -m venv "$VNC_VENV"
  "$VNC_VENV/bin/python" -m pip install -q -r "$VNC_REQUIREMENTS"
  echo "$want" >"$VNC_VENV/requirements.sha256"
  log "vncdotool $VNCDOTOOL_VERSION installed: $VNC_VENV/bin/vncdo"
}

if [ ${#missing[@]} -eq 0 ] && [ ${#missing_bpo[@]} -eq 0 ]; then
  log "all $(( ${#packages[@]} + ${#bpo_packages[@]} )) packages present" \
      "(qemu-system-x86 $(installed_version qemu-system-x86))"
  install_vnc_clients
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
apt_get() { "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 "$@"; }

# Add bookworm-backports, written like the machine's own deb822 sources (same mirror), unless
# some source already lists that suite.
have_backports() {
  grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}
if ! have_backports; then
  mirror=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # The stanza whose Suites include plain "bookworm": take its first URI.
    mirror=$(awk '
      /^[[:space:]]*$/ { if (hit && uri != "") { print uri; exit } hit=0; uri=""; next }
      /^URIs:/ { uri=$2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") hit=1 }
      END { if (hit && uri != "") print uri }' "$f" | head -n1)
    [ -n "$mirror" ] && break
  done
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  log "adding $BACKPORTS_SOURCE (mirror $mirror)"
  "${sudo_cmd[@]}" tee "$BACKPORTS_SOURCE" >/dev/null <<EOF
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: $keyring
EOF
fi

log "installing: ${missing[*]} ${missing_bpo[*]}"
apt_get update -q
if [ ${#missing[@]} -gt 0 ]; then
  apt_get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ${#missing_bpo[@]} -gt 0 ]; then
  apt_get install -y -q --no-install-recommends -t bookworm-backports "${missing_bpo[@]}"
fi

v=$(installed_version qemu-system-x86)
if ! dpkg --compare-versions "$v" ge "$MIN_QEMU_VERSION"; then
  log "error: qemu-system-x86 is $v, need >= $MIN_QEMU_VERSION" >&2
  exit 1
fi
install_vnc_clients
log "done (qemu-system-x86 $v)"

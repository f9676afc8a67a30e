#!/usr/bin/env bash
# Installs every Debian package the project needs to build and test, idempotently.
# Safe to run again: packages already present are left alone and apt is not touched.
set -euo pipefail

packages=(
  # rutabaga_gfx 0.1.2 against the system virglrenderer 0.10.4 (../shared/FACTS.md)
  pkg-config libvirglrenderer-dev libvirglrenderer1 libepoxy-dev libdrm-dev libgbm-dev
  libegl1-mesa-dev libgles-dev libgl1-mesa-dri libegl-mesa0
  # headers the seccomp constant generator reads (kernel uapi and DRM)
  linux-libc-dev
  # tracing the GPU process to derive its policy (`ray-seccomp learn`)
  strace
  # `ss`: the display-socket test reads who holds each end of every Unix socket
  iproute2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-host: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup-host: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q
"${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"

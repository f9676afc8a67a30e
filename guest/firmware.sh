#!/usr/bin/env bash
# Locates Debian's OVMF (package ovmf) for UEFI guests and makes a writable copy of its
# variable store under .cache/guest/uefi/.
#
# Source it and call the functions, or run it to print shell assignments:
#   $ guest/firmware.sh [VARS_COPY]
#   OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
#   OVMF_VARS=/work/main/.cache/guest/uefi/OVMF_VARS_4M.fd
# QEMU: -drive if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE
#       -drive if=pflash,format=raw,unit=1,file=$OVMF_VARS
# OVMF_CODE_4M.fd is the build without Secure Boot (no SMM needed, includes the UEFI shell).

rayos_ovmf_code() {
  local f
  for f in /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/ovmf/OVMF.fd; do
    if [ -f "$f" ]; then echo "$f"; return 0; fi
  done
  echo "firmware.sh: OVMF not found (run scripts/setup-guest-tools.sh)" >&2
  return 1
}

# rayos_ovmf_vars [DEST]: copies the pristine OVMF_VARS_4M.fd to DEST (default
# .cache/guest/uefi/OVMF_VARS_4M.fd) each time, so every boot starts from the same variables.
rayos_ovmf_vars() {
  local repo dest src=/usr/share/OVMF/OVMF_VARS_4M.fd
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  dest=${1:-$repo/.cache/guest/uefi/OVMF_VARS_4M.fd}
  if [ ! -f "$src" ]; then
    echo "firmware.sh: $src not found (run scripts/setup-guest-tools.sh)" >&2
    return 1
  fi
  mkdir -p "$(dirname "$dest")"
  install -m 0644 "$src" "$dest"
  echo "$dest"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  echo "OVMF_CODE=$(rayos_ovmf_code)"
  echo "OVMF_VARS=$(rayos_ovmf_vars "${1:-}")"
fi

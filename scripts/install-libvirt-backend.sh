#!/usr/bin/env bash
# Installs the jailed GPU as the vhost-user GPU backend libvirt starts, idempotently:
#   - builds ray-gpu-backend and ray-gpu (release; --debug: the debug build; --no-build: use
#     what target/ already holds);
#   - copies both, and the seccomp policies, into $DEST (default /usr/local/libexec/rayos),
#     where the QEMU user libvirt runs backends as (libvirt-qemu) can execute them: root-owned,
#     mode 0755, ray-gpu beside ray-gpu-backend, policies in $DEST/policies;
#   - writes the descriptor /etc/qemu/vhost-user/40-rayos-gpu.json, which sorts before
#     Debian's 50-qemu-gpu.json (/usr/share/qemu/vhost-user), so libvirt picks this backend
#     for <video><driver name='vhostuser'/></video>.
# Files already identical are left alone. Usage:
#   scripts/install-libvirt-backend.sh [--debug] [--no-build] [--dest DIR]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
DEST=/usr/local/libexec/rayos
DESCRIPTOR_DIR=/etc/qemu/vhost-user
DESCRIPTOR=$DESCRIPTOR_DIR/40-rayos-gpu.json
QEMU_USER=libvirt-qemu
profile=release
build=1

log() { echo "install-libvirt-backend: $*"; }
die() { log "error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    --dest) [ $# -ge 2 ] || die "--dest needs a directory"; DEST=$2; shift ;;
    --dest=*) DEST=${1#--dest=} ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
case "$DEST" in /*) ;; *) die "--dest must be an absolute path, not $DEST" ;; esac

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

target=$repo/target/$profile
if [ $build = 1 ]; then
  flags=()
  [ "$profile" = release ] && flags=(--release)
  log "building ray-gpu-backend and ray-gpu ($profile)"
  (cd "$repo" && cargo build -q "${flags[@]}" -p libvirt-backend -p gpu-process)
fi
for bin in ray-gpu-backend ray-gpu; do
  [ -x "$target/$bin" ] || die "$target/$bin is missing (build it, or drop --no-build)"
done

# Copies $1 to $2 with mode $3 unless $2 already has the same bytes. `install` replaces the
# file (a new inode), so a backend running from the old one is not disturbed.
changed=0
put() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    return
  fi
  "${sudo_cmd[@]}" install -D -o root -g root -m "$3" "$1" "$2"
  changed=$((changed + 1))
}

"${sudo_cmd[@]}" install -d -o root -g root -m 0755 "$DEST" "$DEST/policies/x86_64" "$DESCRIPTOR_DIR"
put "$target/ray-gpu-backend" "$DEST/ray-gpu-backend" 0755
put "$target/ray-gpu" "$DEST/ray-gpu" 0755
for policy in "$repo"/policies/x86_64/*.policy; do
  put "$policy" "$DEST/policies/x86_64/$(basename "$policy")" 0644
done

descriptor=$(mktemp)
trap 'rm -f "$descriptor"' EXIT
cat >"$descriptor" <<EOF
{
  "description": "RayOS GPU: ray-gpu in its jail, behind a checking vhost-user relay",
  "type": "gpu",
  "binary": "$DEST/ray-gpu-backend"
}
EOF
put "$descriptor" "$DESCRIPTOR" 0644
log "$changed file(s) updated; backend $DEST/ray-gpu-backend, descriptor $DESCRIPTOR"

# libvirt runs the backend as the QEMU user: check that user can run it (every directory on
# the way must be searchable by it).
if getent passwd "$QEMU_USER" >/dev/null; then
  if ! caps=$("${sudo_cmd[@]}" setpriv --reuid="$QEMU_USER" --regid="$(id -g "$QEMU_USER")" \
      --clear-groups "$DEST/ray-gpu-backend" --print-capabilities 2>&1); then
    die "$QEMU_USER cannot run $DEST/ray-gpu-backend: $caps"
  fi
  log "$QEMU_USER runs it: features $(echo "$caps" | tr -d ' \n' | sed 's/.*"features":\(\[[^]]*\]\).*/\1/')"
fi

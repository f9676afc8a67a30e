#!/usr/bin/env bash
# Builds the RayOS Linux test guest from Debian packages only:
#   .cache/guest/linux/vmlinuz     Debian's linux-image-amd64 kernel (bookworm 6.1 by default)
#   .cache/guest/linux/initrd.img  zstd cpio: trimmed `debootstrap --variant=minbase bookworm`
#                                  userland (guest/linux/packages), the kernel-module closure of
#                                  guest/linux/modules, and guest/linux/init as /init
#   .cache/guest/linux/stamp       hash of the inputs (this script, init, packages, modules,
#                                  kernel suite); the image is rebuilt only when it changes
#   .cache/guest/linux/manifest    kernel version, package versions, sizes
#
# Environment:
#   RAYOS_GUEST_KERNEL=bookworm|bookworm-backports   kernel suite (default bookworm: 6.1)
#   RAYOS_DEBIAN_MIRROR=URL                           (default http://deb.debian.org/debian)
#   RAYOS_GUEST_OUT=DIR                               output dir (default .cache/guest/linux)
#   RAYOS_GUEST_FORCE=1                               rebuild even if the stamp matches
#   RAYOS_GUEST_COMPRESS=zstd|none                    initramfs compression (default zstd, 95 MB;
#                                                     none is 315 MB but boots ~3.5 s faster
#                                                     under TCG: no decompression in the guest)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=${RAYOS_GUEST_OUT:-$repo/.cache/guest/linux}
kernel_suite=${RAYOS_GUEST_KERNEL:-bookworm}
mirror=${RAYOS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
zstd_level=${RAYOS_GUEST_ZSTD_LEVEL:-12}
compress=${RAYOS_GUEST_COMPRESS:-zstd}

log() { echo "build-linux-guest: $*"; }
die() { echo "build-linux-guest: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
case "$kernel_suite" in bookworm|bookworm-backports) ;; *) die "RAYOS_GUEST_KERNEL=$kernel_suite" ;; esac
case "$compress" in zstd|none) ;; *) die "RAYOS_GUEST_COMPRESS=$compress" ;; esac

[ "${RAYOS_GUEST_TOOLS_CHECKED:-0}" = 1 ] || "$repo/scripts/setup-guest-tools.sh"

list() { sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$1"; }

inputs_hash=$(
  {
    for f in "$here/build-linux-guest.sh" "$here/linux/init" "$here/linux/packages" "$here/linux/modules"; do
      echo "== $(basename "$f")"
      cat "$f"
    done
    echo "== kernel_suite=$kernel_suite compress=$compress zstd_level=$zstd_level"
  } | sha256sum | cut -d' ' -f1
)

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

if [ "${RAYOS_GUEST_FORCE:-0}" != 1 ] && [ -f "$out/stamp" ] && [ -f "$out/vmlinuz" ] &&
  [ -f "$out/initrd.img" ] && grep -qx "inputs=$inputs_hash" "$out/stamp"; then
  log "up to date: $out (inputs $inputs_hash)"
  exit 0
fi
log "building into $out (inputs $inputs_hash)"
t0=$(date +%s)

work="$out/build.tmp"
cleanup() {
  # Never rm -rf through a live mount (debootstrap mounts proc/sys in the target).
  if [ -d "$work" ]; then
    { findmnt -rn -o TARGET | grep -F "$work/" || true; } | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$work"
  fi
}
trap cleanup EXIT
cleanup
mkdir -p "$work/kernel" "$work/debs"
rootfs="$work/rootfs"

# 1. Kernel: download the linux-image package linux-image-amd64 depends on, unpack it here.
apt_t=()
[ "$kernel_suite" = bookworm ] || apt_t=(-t "$kernel_suite")
kpkg=$(apt-cache "${apt_t[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 ($kernel_suite)"
log "kernel package $kpkg ($kernel_suite)"
(cd "$work/debs" && apt-get -q "${apt_t[@]}" download "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
kdeb=$(ls "$work"/debs/linux-image-*.deb 2>/dev/null | head -n1)
[ -n "$kdeb" ] || die "download of $kpkg failed"
dpkg-deb -x "$kdeb" "$work/kernel"
kver=$(ls "$work/kernel/lib/modules" | head -n1)
[ -f "$work/kernel/boot/vmlinuz-$kver" ] || die "no vmlinuz in $kdeb"
log "kernel $kver"

# 2. Userland.
pkgs=$(list "$here/linux/packages" | paste -sd, -)
log "debootstrap --variant=minbase bookworm (+ $pkgs)"
t1=$(date +%s)
debootstrap --variant=minbase --include="$pkgs" bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 30 "$work/debootstrap.log"; die "debootstrap failed"; }
log "debootstrap took $(( $(date +%s) - t1 )) s"
# debootstrap leaves nothing mounted on success, but be sure before trimming.
if findmnt -rn -o TARGET | grep -qF "$rootfs/"; then die "something is still mounted under $rootfs"; fi

# 3. Kernel modules: the dependency closure of guest/linux/modules.
depmod -b "$work/kernel" "$kver"
mods=$(list "$here/linux/modules")
# shellcheck disable=SC2086
closure=$(modprobe -d "$work/kernel" -S "$kver" -a --show-depends $mods | awk '$1=="insmod" {print $2}' | sort -u)
nmod=0
for m in $closure; do
  # modprobe -d prints the paths under the base directory: make them guest paths.
  m=${m#"$work/kernel"}
  src="$work/kernel$m"
  [ -f "$src" ] || die "module $m not found"
  mkdir -p "$rootfs/usr$(dirname "$m")"
  cp "$src" "$rootfs/usr$m"
  nmod=$((nmod + 1))
done
kmoddir="$work/kernel/lib/modules/$kver"
cp "$kmoddir"/modules.order "$kmoddir"/modules.builtin* "$rootfs/usr/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$rootfs" "$kver" 2>/dev/null || depmod -b "$rootfs/usr" "$kver"
log "$nmod modules ($(du -sh "$rootfs/usr/lib/modules/$kver" | cut -f1)): $(echo "$closure" | xargs -n1 basename | sed 's/\.ko.*//' | paste -sd' ' -)"

# 4. Trim what a test guest never reads.
rm -rf "$rootfs"/usr/share/{doc,man,info,locale,lintian,linda,bug,bash-completion,zsh,common-licenses}/*
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/var/cache/ldconfig/aux-cache
rm -f "$rootfs"/etc/machine-id
# Package versions, for the manifest.
dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${Package} ${Version}\n' >"$work/packages.txt"

# 5. /init, and a few things the guest expects.
install -m 0755 "$here/linux/init" "$rootfs/init"
# The 2d workload's test picture for 1024x768 XRGB8888 (stride 4096), made here because making it
# in the guest's shell under TCG takes seconds: red, green, blue, white bands, 192 lines each.
mkdir -p "$rootfs/usr/share/rayos"
for colour in '\000\000\377\000' '\000\377\000\000' '\377\000\000\000' '\377\377\377\000'; do
  printf "$colour" >"$work/px"
  for _ in $(seq 18); do cat "$work/px" "$work/px" >"$work/px2" && mv "$work/px2" "$work/px"; done
  head -c $((4096 * 192)) "$work/px"
done >"$rootfs/usr/share/rayos/bands-1024x768-4096.xrgb"
rm -f "$work/px"
mkdir -p "$rootfs"/{proc,sys,dev,tmp,run,root}
echo rayos-guest >"$rootfs/etc/hostname"

# 6. Pack: sorted names (reproducible order), hardlinks kept (Mesa's DRI drivers are one file).
t1=$(date +%s)
if [ "$compress" = zstd ]; then
  log "packing initramfs (zstd -$zstd_level)"
  (cd "$rootfs" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc) |
    zstd -q -T0 -"$zstd_level" >"$work/initrd.img"
else
  log "packing initramfs (uncompressed)"
  (cd "$rootfs" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc) >"$work/initrd.img"
fi
log "packing took $(( $(date +%s) - t1 )) s"
rootfs_size=$(du -sh "$rootfs" | cut -f1)

install -m 0644 "$work/kernel/boot/vmlinuz-$kver" "$out/vmlinuz.new"
mv "$work/initrd.img" "$out/initrd.img.new"
mv "$out/vmlinuz.new" "$out/vmlinuz"
mv "$out/initrd.img.new" "$out/initrd.img"
{
  echo "kernel_package=$kpkg"
  echo "kernel=$kver"
  echo "kernel_suite=$kernel_suite"
  echo "compress=$compress"
  echo "rootfs_size=$rootfs_size"
  echo "initrd_bytes=$(stat -c %s "$out/initrd.img")"
  echo "modules=$(echo "$closure" | xargs -n1 basename | paste -sd' ' -)"
  echo "build_seconds=$(( $(date +%s) - t0 ))"
  echo "== packages"
  cat "$work/packages.txt"
} >"$out/manifest"
printf 'inputs=%s\nkernel=%s\nbuilt=%s\n' "$inputs_hash" "$kver" "$(date -u +%FT%TZ)" >"$out/stamp"
log "built in $(( $(date +%s) - t0 )) s: vmlinuz ($kver, $(du -h "$out/vmlinuz" | cut -f1))," \
  "initrd.img ($(du -h "$out/initrd.img" | cut -f1), rootfs $rootfs_size)"

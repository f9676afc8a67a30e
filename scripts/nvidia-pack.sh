#!/usr/bin/env bash
# Packs what the NVIDIA GPU host needs for scripts/nvidia-run.sh into .devcarry/ (and the
# glvnd packages into .gl/), both ignored by git and carried by the `device` tool:
#   .devcarry/bin/      rayvmm, ray-gpu, the probe build of ray-gpu, the replay and
#                       noisy-neighbour benchmarks
#                       (release builds here, glibc 2.36, stripped; they run on Ubuntu 24.04)
#   .devcarry/libs/     Debian's virglrenderer and the libraries it links that the host lacks
#   .devcarry/recordings/  the guest recordings (scripts/record-guests.sh)
# The GPU host reaches no registry and takes at most 64 MiB per call: nothing is fetched there.
#
#   bash scripts/nvidia-pack.sh     # then, on the device: bash scripts/nvidia-run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

carry=.devcarry
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >>.git/info/exclude
grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo '/.gl/' >>.git/info/exclude
mkdir -p "$carry/bin" "$carry/libs" "$carry/recordings" .gl

bash scripts/record-guests.sh
cp .cache/recordings/kmscube.raygrec .cache/recordings/glmark2.raygrec "$carry/recordings/"

printf 'cargo: release rayvmm, ray-gpu and the replay benchmark, probe ray-gpu ... '
{
  cargo build --release -p vmm -p gpu-process
  cargo bench -p integration --bench replay --bench neighbours --no-run
  # The probe build as scripts/test.sh makes it: in the shared target dir, copied aside,
  # then the ordinary debug ray-gpu rebuilt over it.
  cargo build -p gpu-process --features probe
  mkdir -p target/probe/debug && cp target/debug/ray-gpu target/probe/debug/ray-gpu
  cargo build -p gpu-process
} >"$carry/build.log" 2>&1 || { echo "failed (see $carry/build.log)"; exit 1; }
echo done
bench=$(ls -t target/release/deps/replay-* | grep -v '\.d$' | head -n1)
neighbours=$(ls -t target/release/deps/neighbours-* | grep -v '\.d$' | head -n1)
strip -o "$carry/bin/rayvmm" target/release/rayvmm
strip -o "$carry/bin/ray-gpu" target/release/ray-gpu
strip -o "$carry/bin/ray-gpu-probe" target/probe/debug/ray-gpu
strip -o "$carry/bin/replay-bench" "$bench"
strip -o "$carry/bin/neighbours-bench" "$neighbours"

# Debian's libraries that ray-gpu links and Ubuntu's GPU image lacks (../shared/FACTS.md).
libs="libvirglrenderer.so.1 libepoxy.so.0 libgbm.so.1 libdrm.so.2 libva.so.2 libva-drm.so.2
  libvulkan.so.1 libwayland-server.so.0 libX11.so.6 libX11-xcb.so.1 libxcb.so.1 libXau.so.6
  libXdmcp.so.6 libbsd.so.0 libmd.so.0 libexpat.so.1 libffi.so.8"
for lib in $libs; do
  cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$carry/libs/"
done

# MESA=1: Debian's llvmpipe (Mesa's swrast driver, LLVM 15 and what they link that Ubuntu's
# GPU image lacks) for the CPU comparison on the GPU host; about 30 MB compressed, cached.
rm -f "$carry/mesa.tar.xz"
if [ "${MESA:-0}" = 1 ]; then
  mesa=.cache/mesa-llvmpipe.tar.xz
  if [ ! -s "$mesa" ]; then
    printf 'xz: Debian Mesa llvmpipe for the GPU host (a minute or two) ... '
    l=usr/lib/x86_64-linux-gnu
    tar -C / -chf - $l/dri/swrast_dri.so $l/libLLVM-15.so.1 $l/libEGL_mesa.so.0 $l/libglapi.so.0 \
      $l/libz3.so.4 $l/libdrm_radeon.so.1 $l/libdrm_amdgpu.so.1 $l/libdrm_nouveau.so.2 \
      $l/libdrm_intel.so.1 $l/libxcb-dri3.so.0 $l/libpciaccess.so.0 $l/libsensors.so.5 \
      $l/libedit.so.2 usr/share/glvnd/egl_vendor.d/50_mesa.json | xz -T2 -6 >"$mesa.partial"
    mv "$mesa.partial" "$mesa"
    echo done
  fi
  cp "$mesa" "$carry/mesa.tar.xz"
  # Mesa's EGL links the X11 and Wayland client libraries even when surfaceless.
  for lib in libxcb-dri2.so.0 libxcb-randr.so.0 libxcb-xfixes.so.0 libwayland-client.so.0 \
      libxcb-present.so.0 libxcb-sync.so.1 libxshmfence.so.1; do
    cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$carry/libs/"
  done
fi

if ! ls .gl/libegl1_*.deb >/dev/null 2>&1; then
  printf 'apt: glvnd packages for the GPU host ... '
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  { apt-get $o update && (cd .gl && apt-get $o download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2); } \
    >"$carry/apt.log" 2>&1 || { echo "failed (see $carry/apt.log)"; exit 1; }
  echo done
fi
du -sh "$carry" .gl | sed 's/^/packed: /'

#!/usr/bin/env bash
# Installs every Debian 12 package that building, running and testing gst-voxcpm needs.
# Idempotent; run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config python3
  libtorch-dev libopenblas0-openmp   # libtorch (CPU) and a fast BLAS for it (else reference BLAS)
  nlohmann-json3-dev libgtest-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-base-apps
  # examples/ and their tests: RTSP server + client, PyGObject, encoders for MP4/MKV, ffmpeg as a client
  libgstrtspserver-1.0-dev gstreamer1.0-rtsp python3-gi gir1.2-gstreamer-1.0
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice ffmpeg
  gir1.2-gst-plugins-bad-1.0   # GstWebRTC typelib for examples/webrtc
  gnuplot-nox                  # voxcpm-bench's PNG plots (optional at run time)
  clang-14 libclang-rt-14-dev  # fuzz/: libFuzzer targets with ASan+UBSan (meson -Dfuzzing=true)
  valgrind                     # scripts/memcheck.sh: memcheck over the engine tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root (missing: ${missing[*]})" >&2; exit 1; }
  sudo=(sudo)
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# The main job: set up, build, and speak a sentence into a WAV file through a GStreamer
# pipeline: voxcpmsrc ! audioconvert ! wavenc ! filesink.
#   scripts/demo.sh ["text"] [out.wav]
# The model directory comes from $VOXCPM_MODEL (a Hugging Face snapshot of openbmb/VoxCPM1.5,
# openbmb/VoxCPM2 or openbmb/VoxCPM-0.5B). Without one, a tiny random model is generated and
# used, so everything runs end to end -- but the audio is noise, not speech.
set -euo pipefail
cd "$(dirname "$0")/.."
text=${1:-"Hello! This is VoxCPM speaking through GStreamer-ready C++."}
out=${2:-voxcpm-demo.wav}

bash scripts/setup.sh
bash scripts/build.sh >/dev/null

model=${VOXCPM_MODEL:-}
limits=()
if [ -z "$model" ]; then
  model=build/tiny-random-model
  if [ ! -f "$model/config.json" ]; then
    build/tools/voxcpm-make-model --like v1.5 --random --tiny "$model"
  fi
  echo "NOTE: no model weights given (set VOXCPM_MODEL=/path/to/VoxCPM1.5): using a tiny RANDOM model," >&2
  echo "      so $out will contain noise, not speech." >&2
  limits=(max-len=30)  # random weights rarely fire the stop head: keep the noise short
fi
GST_PLUGIN_PATH="$PWD/build/gst" gst-launch-1.0 -q \
  voxcpmsrc model-path="$model" text="$text" "${limits[@]}" ! audioconvert ! wavenc ! filesink location="$out"
echo "wrote $out ($(stat -c %s "$out") bytes)"

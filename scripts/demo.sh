#!/usr/bin/env bash
# The main job: set up, build, and speak a sentence into a WAV file.
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
if [ -z "$model" ]; then
  model=build/tiny-random-model
  if [ ! -f "$model/config.json" ]; then
    build/tools/voxcpm-make-model --like v1.5 --random --tiny "$model"
  fi
  echo "NOTE: no model weights given (set VOXCPM_MODEL=/path/to/VoxCPM1.5): using a tiny RANDOM model," >&2
  echo "      so $out will contain noise, not speech." >&2
fi
build/tools/voxcpm-synth --model "$model" --text "$text" -o "$out"
echo "wrote $out"

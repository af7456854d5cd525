#!/usr/bin/env bash
# gst-launch-1.0 pipelines with the voxcpm plugin, one per use (see README.md next to this file).
#
#   voxcpm-pipelines.sh MODEL_DIR OUT_DIR [EXAMPLE...]
#
# EXAMPLE is one of: speakers wav ogg mp3 srt-mp4 srt-mkv mix clone (default: all but speakers).
# VOXCPM_PROPS adds properties to every voxcpm element, e.g. VOXCPM_PROPS="device=cuda seed=7".
# Needs: gstreamer1.0-plugins-base/good (wav, ogg/vorbis, mp3, mp4/mkv muxers, audiomixer, subparse),
# -ugly (x264enc), -libav (avenc_aac) for MP4. GST_PLUGIN_PATH=<build>/gst for an uninstalled build.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
model=$1
out=$2
shift 2
mkdir -p "$out"
examples=("$@")
[ ${#examples[@]} -gt 0 ] || examples=(wav ogg mp3 srt-mp4 srt-mkv mix clone)
# Word splitting of VOXCPM_PROPS is intended: it holds several name=value words.
# shellcheck disable=SC2206
props=(model-path="$model" ${VOXCPM_PROPS:-})
launch=(gst-launch-1.0 -q)
here=$(cd "$(dirname "$0")" && pwd)
srt=${VOXCPM_SRT:-$here/subtitles.srt}

for ex in "${examples[@]}"; do
  echo "== $ex"
  case $ex in
    speakers)  # Straight to the sound card; audioresample adapts the model's rate to the card.
      "${launch[@]}" voxcpmsrc "${props[@]}" text="Hello from VoxCPM." ! audioconvert ! audioresample ! autoaudiosink
      ;;
    wav)  # 32-bit float WAV at the model's native rate (add audio/x-raw,format=S16LE for 16-bit).
      "${launch[@]}" voxcpmsrc "${props[@]}" text="Hello from VoxCPM." ! audioconvert ! wavenc ! \
        filesink location="$out/hello.wav"
      ;;
    ogg)  # Ogg Vorbis.
      "${launch[@]}" voxcpmsrc "${props[@]}" text="Hello from VoxCPM." ! audioconvert ! vorbisenc ! oggmux ! \
        filesink location="$out/hello.ogg"
      ;;
    mp3)  # MP3 (LAME).
      "${launch[@]}" voxcpmsrc "${props[@]}" text="Hello from VoxCPM." ! audioconvert ! lamemp3enc ! id3v2mux ! \
        filesink location="$out/hello.mp3"
      ;;
    srt-mp4)  # Each subtitle cue spoken at its start time (later cues wait: overflow=shift); silence
      # between cues comes from GAP events, which audiorate turns into samples for the encoder.
      # The video lasts 4 s (videotestsrc num-buffers=100 at 25 fps).
      "${launch[@]}" -e mp4mux name=mux ! filesink location="$out/subtitled.mp4" \
        filesrc location="$srt" ! subparse ! voxcpmtts "${props[@]}" overflow=shift ! audioconvert ! \
        audiorate ! audioresample ! avenc_aac ! queue ! mux. \
        videotestsrc num-buffers=100 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
        x264enc speed-preset=ultrafast tune=zerolatency ! queue ! mux.
      ;;
    srt-mkv)  # The same into Matroska with Opus audio and VP8 video.
      "${launch[@]}" -e matroskamux name=mux ! filesink location="$out/subtitled.mkv" \
        filesrc location="$srt" ! subparse ! voxcpmtts "${props[@]}" overflow=shift ! audioconvert ! \
        audiorate ! audioresample ! opusenc ! queue ! mux. \
        videotestsrc num-buffers=100 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
        vp8enc deadline=1 ! queue ! mux.
      ;;
    mix)  # Two voices (two seeds) talking over each other, mixed.
      "${launch[@]}" audiomixer name=mix ! audioconvert ! wavenc ! filesink location="$out/mixed.wav" \
        voxcpmsrc "${props[@]}" seed=1 text="The first voice." ! audioconvert ! mix. \
        voxcpmsrc "${props[@]}" seed=2 text="And the second one." ! audioconvert ! mix.
      ;;
    clone)  # Continue the voice of a prompt recording (WAV + its transcript). Default prompt: the wav example.
      prompt=${VOXCPM_PROMPT_WAV:-$out/hello.wav}
      prompt_text=${VOXCPM_PROMPT_TEXT:-Hello from VoxCPM.}
      "${launch[@]}" voxcpmsrc "${props[@]}" prompt-wav-path="$prompt" prompt-text="$prompt_text" \
        text="This sentence is spoken in the prompt's voice." ! audioconvert ! wavenc ! \
        filesink location="$out/cloned.wav"
      ;;
    *)
      echo "unknown example: $ex" >&2
      exit 2
      ;;
  esac
done

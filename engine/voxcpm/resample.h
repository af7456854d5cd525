// Band-limited resampling of prompt/reference audio to the AudioVAE encoder rate.
#pragma once

#include <cstdint>
#include <vector>

namespace voxcpm {

// Hann-windowed sinc interpolation with torchaudio.functional.resample's defaults
// (lowpass_filter_width 6, rolloff 0.99), computed in float32 with the same kernel and
// conv1d as torchaudio 0.13, so VoxCPM-0.5B/1.5 prompt latents match the reference.
// Output length ceil(n * to / from). Same rates: returns the input unchanged.
std::vector<float> resample(const std::vector<float>& in, int64_t from_rate, int64_t to_rate);

}  // namespace voxcpm

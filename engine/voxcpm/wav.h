// WAV files in and out: prompt/reference audio for cloning, and the synthesized result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace voxcpm {

struct Audio {
  std::vector<float> samples;  // mono, [-1, 1]
  int64_t sample_rate = 0;
};

// RIFF/WAVE: PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE of either. Several
// channels are mixed down to their mean (as the official loaders do). Integer PCM is divided by
// 2^(bits-1) like torchaudio/soundfile. Any malformed file → voxcpm::Error naming it.
Audio read_wav(const std::string& path);

enum class SampleFormat { S16, F32 };
void write_wav(const std::string& path, const float* samples, size_t count, int64_t sample_rate,
               SampleFormat format);

// Streams a WAV whose length is unknown up front: the header is patched on close.
class WavWriter {
 public:
  WavWriter(const std::string& path, int64_t sample_rate, SampleFormat format);
  ~WavWriter();
  WavWriter(const WavWriter&) = delete;
  WavWriter& operator=(const WavWriter&) = delete;
  void write(const float* samples, size_t count);
  void close();  // writes the final sizes; throws on I/O errors

 private:
  std::string path_;
  void* file_ = nullptr;  // FILE*
  int64_t rate_;
  SampleFormat format_;
  uint64_t data_bytes_ = 0;
};

}  // namespace voxcpm

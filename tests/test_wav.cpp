// WAV reading/writing and the prompt-audio resampler.
#include <cmath>
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/error.h"
#include "voxcpm/resample.h"
#include "voxcpm/wav.h"

using namespace voxcpm;

namespace {

std::vector<float> sine(double freq, int64_t rate, size_t n, double amp = 0.5) {
  std::vector<float> s(n);
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<float>(amp * std::sin(2 * M_PI * freq * i / rate));
  return s;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string le(uint32_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
  return s;
}

// A WAV with an arbitrary fmt chunk (tag, channels, bits) around raw sample bytes.
std::string make_wav(uint16_t tag, uint16_t channels, uint32_t rate, uint16_t bits, const std::string& pcm) {
  std::string fmt = le(tag, 2) + le(channels, 2) + le(rate, 4) + le(rate * channels * bits / 8, 4) +
                    le(channels * bits / 8, 2) + le(bits, 2);
  std::string body = "WAVEfmt " + le(16, 4) + fmt + "data" + le(pcm.size(), 4) + pcm;
  return "RIFF" + le(body.size(), 4) + body;
}

}  // namespace

TEST(Wav, RoundTripFloatIsExact) {
  std::string dir = test::make_temp_dir();
  auto s = sine(440, 16000, 1234);
  write_wav(dir + "/a.wav", s.data(), s.size(), 16000, SampleFormat::F32);
  Audio a = read_wav(dir + "/a.wav");
  EXPECT_EQ(a.sample_rate, 16000);
  ASSERT_EQ(a.samples.size(), s.size());
  for (size_t i = 0; i < s.size(); ++i) ASSERT_EQ(a.samples[i], s[i]);
}

TEST(Wav, RoundTripS16WithinQuantisation) {
  std::string dir = test::make_temp_dir();
  auto s = sine(1000, 44100, 999);
  s[3] = 1.5f;  // clipped, not wrapped
  write_wav(dir + "/a.wav", s.data(), s.size(), 44100, SampleFormat::S16);
  Audio a = read_wav(dir + "/a.wav");
  EXPECT_EQ(a.sample_rate, 44100);
  ASSERT_EQ(a.samples.size(), s.size());
  EXPECT_NEAR(a.samples[3], 32767 / 32768.0, 1e-6);
  for (size_t i = 4; i < s.size(); ++i) ASSERT_NEAR(a.samples[i], s[i], 1.0 / 32768 + 1e-6);
}

TEST(Wav, StreamingWriterPatchesHeader) {
  std::string dir = test::make_temp_dir();
  auto s = sine(300, 8000, 500);
  {
    WavWriter w(dir + "/s.wav", 8000, SampleFormat::F32);
    w.write(s.data(), 200);
    w.write(s.data() + 200, 300);
  }
  Audio a = read_wav(dir + "/s.wav");
  EXPECT_EQ(a.samples.size(), 500u);
  EXPECT_EQ(a.samples[250], s[250]);
}

TEST(Wav, StereoIsMixedDownAnd24BitDecoded) {
  std::string dir = test::make_temp_dir();
  // Two frames of 24-bit stereo: (0.5, -0.25) and (-1.0, 1.0).
  auto s24 = [](double v) { return le(static_cast<uint32_t>(static_cast<int32_t>(v * 8388608.0)) & 0xffffff, 3); };
  std::string pcm = s24(0.5) + s24(-0.25) + s24(-1.0) + s24(0.99999);
  write_bytes(dir + "/st.wav", make_wav(1, 2, 22050, 24, pcm));
  Audio a = read_wav(dir + "/st.wav");
  EXPECT_EQ(a.sample_rate, 22050);
  ASSERT_EQ(a.samples.size(), 2u);
  EXPECT_NEAR(a.samples[0], 0.125, 1e-6);
  EXPECT_NEAR(a.samples[1], 0.0, 1e-5);
}

TEST(Wav, BadFilesAreClearErrors) {
  std::string dir = test::make_temp_dir();
  EXPECT_THROW(read_wav(dir + "/missing.wav"), Error);
  write_bytes(dir + "/garbage.wav", "this is not audio at all");
  try {
    read_wav(dir + "/garbage.wav");
    FAIL() << "garbage accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.wav"), std::string::npos) << e.what();
  }
  write_bytes(dir + "/alaw.wav", make_wav(6, 1, 8000, 8, "abcd"));
  EXPECT_THROW(read_wav(dir + "/alaw.wav"), Error);
  write_bytes(dir + "/zero_ch.wav", make_wav(1, 0, 8000, 16, "abcd"));
  EXPECT_THROW(read_wav(dir + "/zero_ch.wav"), Error);
  // Every truncation of a valid file either reads fewer samples or throws; never crashes.
  auto s = sine(440, 16000, 64);
  write_wav(dir + "/ok.wav", s.data(), s.size(), 16000, SampleFormat::S16);
  std::ifstream in(dir + "/ok.wav", std::ios::binary);
  std::string full((std::istreambuf_iterator<char>(in)), {});
  for (size_t cut = 0; cut < full.size(); cut += 3) {
    write_bytes(dir + "/cut.wav", full.substr(0, cut));
    try {
      Audio a = read_wav(dir + "/cut.wav");
      EXPECT_LE(a.samples.size(), s.size());
    } catch (const Error&) {
    }
  }
}

TEST(Wav, ReadsTheFixturePromptBitExactly) {
  // golden-v1.5 stores the loaded prompt waveform as a tensor next to the float32 WAV file.
  auto g = test::load_golden("v1.5", "clone");
  Audio a = read_wav(test::fixtures_dir() + "/golden-v1.5/prompt.wav");
  EXPECT_EQ(a.sample_rate, 44100);
  at::Tensor ref = g["prompt.wav"].reshape({-1});
  ASSERT_EQ(static_cast<int64_t>(a.samples.size()), ref.numel());
  at::Tensor got = at::from_blob(a.samples.data(), {ref.numel()}, at::kFloat);
  EXPECT_EQ(test::max_abs_diff(got, ref), 0.0);
}

TEST(Resample, LengthAndSinePreserved) {
  const int64_t from = 44100, to = 16000;
  auto s = sine(440, from, 44100);
  auto r = resample(s, from, to);
  EXPECT_EQ(r.size(), 16000u);  // ceil(n * to / from)
  // Away from the edges the output is the same sine sampled at the new rate.
  double err = 0;
  for (size_t i = 200; i < r.size() - 200; ++i) err = std::max(err, std::abs(r[i] - 0.5 * std::sin(2 * M_PI * 440 * i / to)));
  EXPECT_LT(err, 2e-3);
  // A tone above the new Nyquist frequency is removed.
  auto hi = resample(sine(12000, from, 44100), from, to);
  double peak = 0;
  for (size_t i = 200; i < hi.size() - 200; ++i) peak = std::max(peak, std::abs(double(hi[i])));
  EXPECT_LT(peak, 0.01);
  EXPECT_EQ(resample(s, 16000, 16000), s);
  EXPECT_EQ(resample(std::vector<float>(7, 0.f), 48000, 16000).size(), 3u);
  EXPECT_THROW(resample(s, 0, 16000), Error);
}

// The plugin as users meet it: gst-inspect-1.0 and gst-launch-1.0 pipelines writing WAV files,
// checked against the non-streaming `voxcpm-synth` output.
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include <gtest/gtest.h>

#include "gst_support.h"
#include "support/golden.h"
#include "voxcpm/wav.h"

namespace voxcpm::gsttest {
namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

// voxcpm-synth (non-streaming generate()) → float samples.
std::vector<float> reference(const std::string& model, const std::string& text, int chunks, const std::string& tmp) {
  const std::string out = tmp + "/ref-" + std::to_string(std::hash<std::string>{}(text)) + ".wav";
  std::string log;
  const std::string cmd = test::build_root() + "/tools/voxcpm-synth --model " + quote(model) + " --text " +
                          quote(text) + " --seed 7 --min-len " + std::to_string(chunks) + " --max-len " +
                          std::to_string(chunks) + " --no-retry-badcase --threads 1 --format f32 -o " + quote(out);
  EXPECT_EQ(run_command(cmd, &log), 0) << log;
  return read_wav(out).samples;
}

class LaunchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gst();
    tmp = test::make_temp_dir();
  }
  std::string tmp;
};

TEST_F(LaunchTest, InspectLoadsNoModel) {
  // If plugin_init, class_init or instance init opened a model, reading this FIFO would hang
  // until `timeout` kills gst-inspect.
  const std::string trap = tmp + "/trap";
  ASSERT_EQ(mkdir(trap.c_str(), 0755), 0);
  for (const char* f : {"config.json", "model.safetensors", "audiovae.pth", "tokenizer.json"})
    ASSERT_EQ(mkfifo((trap + "/" + f).c_str(), 0644), 0);
  for (const char* what : {"voxcpm", "voxcpmtts", "voxcpmsrc"}) {
    std::string out;
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = run_command("VOXCPM_MODEL=" + quote(trap) + " timeout 60 gst-inspect-1.0 " + what, &out);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(rc, 0) << what << ":\n" << out;
    EXPECT_LT(s, 30.0) << what;
    if (std::string(what) == "voxcpm") {
      EXPECT_NE(out.find("voxcpmtts"), std::string::npos) << out;
      EXPECT_NE(out.find("voxcpmsrc"), std::string::npos) << out;
      EXPECT_NE(out.find("Apache 2.0"), std::string::npos) << out;
    } else {
      EXPECT_NE(out.find("model-path"), std::string::npos) << out;
    }
  }
}

TEST_F(LaunchTest, SourcePipelineWritesTheNonStreamingWaveform) {
  const std::string wav = tmp + "/src.wav", text = "Hello there.";
  std::string out;
  const std::string cmd = "gst-launch-1.0 -q voxcpmsrc model-path=" + quote(tiny_v15()) + " text=" + quote(text) +
                          " seed=7 min-len=3 max-len=3 n-threads=1 ! audioconvert ! audio/x-raw,format=F32LE ! "
                          "wavenc ! filesink location=" + quote(wav);
  ASSERT_EQ(run_command(cmd, &out), 0) << out;
  const Audio got = read_wav(wav);
  EXPECT_EQ(got.sample_rate, kRateV15);
  const std::vector<float> expected = reference(tiny_v15(), text, 3, tmp);
  ASSERT_EQ(got.samples.size(), expected.size());
  EXPECT_EQ(got.samples.size(), 3u * kChunkV15);
  EXPECT_LE(max_abs_diff(got.samples, expected), 1e-5);
}

TEST_F(LaunchTest, SubtitlePipelineSpeaksEachCue) {
  const std::string srt = tmp + "/cues.srt", wav = tmp + "/tts.wav";
  std::ofstream(srt) << "1\n00:00:00,500 --> 00:00:01,000\nHello <i>there</i>.\n\n"
                        "2\n00:00:02,000 --> 00:00:02,500\nSecond & last.\n\n";
  std::string out;
  const std::string cmd = "gst-launch-1.0 -q filesrc location=" + quote(srt) + " ! subparse ! voxcpmtts model-path=" +
                          quote(tiny_v1()) + " seed=7 min-len=3 max-len=3 n-threads=1 overflow=shift ! "
                          "audioconvert dithering=none noise-shaping=none ! audio/x-raw,format=S16LE ! wavenc ! "
                          "filesink location=" + quote(wav);
  ASSERT_EQ(run_command(cmd, &out), 0) << out;
  const Audio got = read_wav(wav);
  EXPECT_EQ(got.sample_rate, kRateV1);
  // Markup stripped and entities decoded: each cue sounds exactly like the plain text.
  std::vector<float> expected = reference(tiny_v1(), "Hello there.", 3, tmp);
  const std::vector<float> second = reference(tiny_v1(), "Second & last.", 3, tmp);
  expected.insert(expected.end(), second.begin(), second.end());
  ASSERT_EQ(got.samples.size(), expected.size());
  EXPECT_EQ(got.samples.size(), 6u * kChunkV1);
  EXPECT_LE(max_abs_diff(got.samples, expected), 1.5 / 32768);
}

}  // namespace
}  // namespace voxcpm::gsttest

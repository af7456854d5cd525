// The command-line tools as a user runs them: voxcpm-make-model, voxcpm-synth, WAV output
// checked by GStreamer's discoverer, and usage errors (exit code 2).
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/wav.h"

using namespace voxcpm;

namespace {

struct ToolRun {
  int code;
  std::string output;
};

ToolRun run(const std::string& cmd) {
  ToolRun r{-1, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string tool(const std::string& name) { return test::build_root() + "/tools/" + name; }

}  // namespace

TEST(Tools, SynthOnATinyGeneratedModelWritesAPlayableWav) {
  const std::string dir = test::make_temp_dir();
  ToolRun mk = run(tool("voxcpm-make-model") + " --like v1.5 --random --tiny --seed 3 " + dir + "/m");
  ASSERT_EQ(mk.code, 0) << mk.output;
  ToolRun s = run(tool("voxcpm-synth") + " --model " + dir + "/m --text 'Hello world.' --seed 5 --max-len 6 -o " + dir +
              "/out.wav");
  ASSERT_EQ(s.code, 0) << s.output;
  Audio a = read_wav(dir + "/out.wav");
  EXPECT_EQ(a.sample_rate, 44100);
  EXPECT_GT(a.samples.size(), 0u);
  EXPECT_EQ(a.samples.size() % 7056, 0u) << "whole patches of 7056 samples";
#ifdef VOXCPM_TEST_WITH_GSTREAMER
  // GStreamer reads it with the same rate and length (a build without the plugin may lack its tools).
  ToolRun d = run("gst-discoverer-1.0 " + dir + "/out.wav");
  ASSERT_EQ(d.code, 0) << d.output;
  EXPECT_NE(d.output.find("Sample rate: 44100"), std::string::npos) << d.output;
  const double seconds = static_cast<double>(a.samples.size()) / 44100;
  const size_t at = d.output.find("Duration: ");
  ASSERT_NE(at, std::string::npos) << d.output;
  int h = 0, m = 0;
  double sec = 0;
  ASSERT_EQ(std::sscanf(d.output.c_str() + at, "Duration: %d:%d:%lf", &h, &m, &sec), 3) << d.output;
  EXPECT_NEAR(h * 3600 + m * 60 + sec, seconds, 1e-3) << d.output;
#endif
  // Same seed, same file.
  ToolRun s2 = run(tool("voxcpm-synth") + " --model " + dir + "/m --text 'Hello world.' --seed 5 --max-len 6 -o " + dir +
               "/out2.wav");
  ASSERT_EQ(s2.code, 0) << s2.output;
  EXPECT_EQ(read_wav(dir + "/out2.wav").samples, a.samples);
}

TEST(Tools, SynthOnTheFixtureModelWithPromptAndF32) {
  const std::string dir = test::make_temp_dir();
  const std::string g = test::fixtures_dir() + "/golden-v1.5";
  ToolRun s = run(tool("voxcpm-synth") + " --model " + test::tiny_model_dir("v1.5") +
              " --text 'hello world' --prompt-wav " + g + "/prompt.wav --prompt-text 'this is a test.'" +
              " --seed 42 --min-len 6 --max-len 12 --no-retry-badcase --format f32 -o " + dir + "/c.wav");
  ASSERT_EQ(s.code, 0) << s.output;
  Audio a = read_wav(dir + "/c.wav");
  test::Golden clone = test::load_golden("v1.5", "clone");
  at::Tensor got = at::from_blob(a.samples.data(), {1, static_cast<int64_t>(a.samples.size())}, at::kFloat);
  EXPECT_CLOSE(got, clone["waveform"], 1e-4);
}

TEST(Tools, SynthStreamPrintsOneLinePerChunkAndWritesTheSameAudio) {
  const std::string dir = test::make_temp_dir();
  const std::string common = tool("voxcpm-synth") + " --model " + test::tiny_model_dir("v1.5") +
                             " --text 'hello world' --seed 42 --min-len 6 --max-len 12 --no-retry-badcase --format f32";
  ToolRun streamed = run(common + " --stream -o " + dir + "/s.wav");
  ASSERT_EQ(streamed.code, 0) << streamed.output;
  ToolRun whole = run(common + " -o " + dir + "/w.wav");
  ASSERT_EQ(whole.code, 0) << whole.output;
  Audio s = read_wav(dir + "/s.wav"), w = read_wav(dir + "/w.wav");
  ASSERT_EQ(s.samples.size(), w.samples.size());
  at::Tensor ts = at::from_blob(s.samples.data(), {static_cast<int64_t>(s.samples.size())}, at::kFloat);
  at::Tensor tw = at::from_blob(w.samples.data(), {static_cast<int64_t>(w.samples.size())}, at::kFloat);
  EXPECT_LE(test::max_abs_diff(ts, tw), 1e-5);
  // "chunk <index> <samples> <ms>" per chunk, indices 0.., 7056 samples each, times increasing.
  std::istringstream lines(streamed.output);
  std::string line;
  int64_t next = 0;
  double last_ms = -1;
  while (std::getline(lines, line)) {
    long long idx = -1, samples = -1;
    double ms = -1;
    if (std::sscanf(line.c_str(), "chunk %lld %lld %lf", &idx, &samples, &ms) != 3) continue;
    EXPECT_EQ(idx, next++);
    EXPECT_EQ(samples, 7056);
    EXPECT_GE(ms, last_ms);
    last_ms = ms;
  }
  EXPECT_EQ(next * 7056, static_cast<int64_t>(s.samples.size()));
}

TEST(Tools, UsageErrorsExitWith2) {
  for (const std::string& args : {std::string(""), std::string("--model"), std::string("--text hi -o x.wav"),
                                  std::string("--model m --text a --text-file b -o x.wav"),
                                  std::string("--model m --text hi -o x.wav --timesteps zero"),
                                  std::string("--model m --text hi -o x.wav --format mp3"),
                                  std::string("--model m --text hi -o x.wav --prompt-wav p.wav"),
                                  std::string("--model m --text hi -o x.wav --bogus")}) {
    ToolRun r = run("env -u VOXCPM_MODEL " + tool("voxcpm-synth") + " " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("usage:"), std::string::npos) << r.output;
  }
  EXPECT_EQ(run(tool("voxcpm-make-model") + " --like v9 --random x").code, 2);
  EXPECT_EQ(run(tool("voxcpm-make-model") + " --like v1.5 x").code, 2);
}

TEST(Tools, SynthReportsModelErrorsWithoutCrashing) {
  const std::string dir = test::make_temp_dir();
  ToolRun r = run(tool("voxcpm-synth") + " --model " + dir + " --text hi -o " + dir + "/x.wav");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
  ToolRun e = run(tool("voxcpm-synth") + " --model " + test::tiny_model_dir("v1.5") + " --text '   ' -o " + dir + "/x.wav");
  EXPECT_EQ(e.code, 1) << e.output;
  EXPECT_NE(e.output.find("empty"), std::string::npos) << e.output;
}

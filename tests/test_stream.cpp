// Streaming synthesis: chunk per patch, exact w.r.t. the non-streaming waveform, the official
// stateful streaming goldens, first chunk after one step, cancellation, concurrency, long text.
#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/error.h"
#include "voxcpm/stream.h"

using namespace voxcpm;

namespace {

std::shared_ptr<const Model> tiny(const std::string& version) {
  LoadOptions o;
  o.dtype = "float32";
  return Model::load(test::tiny_model_dir(version), o);
}


std::vector<AudioChunk> stream_all(Synthesis& s) {
  std::vector<AudioChunk> out;
  while (auto c = s.next_chunk()) out.push_back(std::move(*c));
  return out;
}

at::Tensor as_tensor(const std::vector<float>& v) {
  return at::from_blob(const_cast<float*>(v.data()), {1, static_cast<int64_t>(v.size())}, at::kFloat).clone();
}

// Streams a golden non-streaming case: chunk layout, offsets, and equality with both our
// non-streaming waveform (1e-5) and the official full decode (1e-4).
void check_stream_equals_whole(const std::string& version, const std::string& name) {
  test::Golden g = test::load_golden(version, name);
  auto model = tiny(version);
  GenerateOptions o = test::golden_options(g);
  const std::string text = g.meta["target_text"].get<std::string>();
  Synthesis s(model, text, o);
  std::vector<AudioChunk> chunks = stream_all(s);
  ASSERT_EQ(static_cast<int64_t>(chunks.size()), g.meta["n_steps"].get<int64_t>());
  std::vector<float> joined;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].index, static_cast<int64_t>(i));
    EXPECT_EQ(chunks[i].offset, static_cast<int64_t>(joined.size()));
    EXPECT_EQ(static_cast<int64_t>(chunks[i].samples.size()), model->samples_per_patch());
    EXPECT_EQ(chunks[i].last, i + 1 == chunks.size());
    joined.insert(joined.end(), chunks[i].samples.begin(), chunks[i].samples.end());
  }
  GenerateResult whole = generate(model, text, o);
  ASSERT_EQ(joined.size(), whole.waveform.size());
  const double d_ours = test::max_abs_diff(as_tensor(joined), as_tensor(whole.waveform));
  const double d_official = test::max_abs_diff(as_tensor(joined), g["waveform"]);
  std::printf("[%s/%s] %zu chunks; streamed vs non-streamed %.3g, vs official non-streamed %.3g\n",
              version.c_str(), name.c_str(), chunks.size(), d_ours, d_official);
  EXPECT_LE(d_ours, 1e-5);
  EXPECT_LE(d_official, 1e-4);
}

}  // namespace

TEST(Stream, V15ZeroShotEqualsWhole) { check_stream_equals_whole("v1.5", "e2e_zeroshot"); }
TEST(Stream, V15CloneEqualsWhole) { check_stream_equals_whole("v1.5", "clone"); }
TEST(Stream, V1ZeroShotEqualsWhole) { check_stream_equals_whole("v1", "e2e_zeroshot"); }
TEST(Stream, V1CloneEqualsWhole) { check_stream_equals_whole("v1", "clone"); }
TEST(Stream, V2ZeroShotEqualsWhole) { check_stream_equals_whole("v2", "e2e_zeroshot"); }
TEST(Stream, V2CloneEqualsWhole) { check_stream_equals_whole("v2", "clone"); }
TEST(Stream, V2ReferenceEqualsWhole) { check_stream_equals_whole("v2", "reference"); }
TEST(Stream, V2ReferenceAndContinuationEqualsWhole) { check_stream_equals_whole("v2", "reference_clone"); }

TEST(Stream, V2MatchesOfficialStatefulStreamingGoldens) {
  // The official VoxCPM2 streaming decoder is stateful and starts cold: identical to ours in the
  // modes without context patches.
  for (const std::string name : {"e2e_zeroshot_stream", "reference_stream"}) {
    test::Golden g = test::load_golden("v2", name);
    auto model = tiny("v2");
    Synthesis s(model, g.meta["target_text"].get<std::string>(), test::golden_options(g));
    std::vector<AudioChunk> chunks = stream_all(s);
    const at::Tensor& ref = g["stream.chunks"];
    ASSERT_EQ(static_cast<int64_t>(chunks.size()), ref.size(0)) << name;
    double d = 0;
    for (size_t i = 0; i < chunks.size(); ++i)
      d = std::max(d, test::max_abs_diff(as_tensor(chunks[i].samples), ref[i].unsqueeze(0)));
    std::printf("[v2/%s] max abs diff vs official chunks %.3g\n", name.c_str(), d);
    EXPECT_LE(d, 1e-4) << name;
  }
}

TEST(Stream, V1FirstChunksMatchOfficialWindowedStreaming) {
  // VoxCPM-0.5B/1.5 Python re-decodes a 3-patch window: exact only while the window still starts
  // at the first patch (the first 3 zero-shot chunks); later chunks are its approximation.
  for (const std::string version : {"v1", "v1.5"}) {
    test::Golden g = test::load_golden(version, "e2e_zeroshot_stream");
    auto model = tiny(version);
    Synthesis s(model, g.meta["target_text"].get<std::string>(), test::golden_options(g));
    std::vector<AudioChunk> chunks = stream_all(s);
    const at::Tensor& ref = g["stream.chunks"];
    ASSERT_EQ(static_cast<int64_t>(chunks.size()), ref.size(0));
    for (int i = 0; i < 3; ++i) EXPECT_CLOSE(as_tensor(chunks[i].samples), ref[i].unsqueeze(0), 1e-4);
  }
}

TEST(Stream, FirstChunkComesAfterPrefillAndOneStep) {
  auto model = tiny("v1.5");
  GenerateOptions o;
  o.seed = 3;
  o.min_len = 5;
  o.max_len = 8;
  Synthesis s(model, "hello world, this is a streaming test", o);
  EXPECT_EQ(s.model_steps(), 0);
  EXPECT_EQ(s.state_bytes(), 0u) << "nothing allocated before the first chunk";
  auto c = s.next_chunk();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(s.model_steps(), 1) << "first chunk must not wait for more than one model step";
  EXPECT_EQ(c->index, 0);
  EXPECT_EQ(c->offset, 0);
  EXPECT_FALSE(c->last);
  auto c2 = s.next_chunk();
  ASSERT_TRUE(c2.has_value());
  EXPECT_EQ(s.model_steps(), 2);
  std::printf("per-request state while running: %zu bytes\n", s.state_bytes());
}

TEST(Stream, CancelFromAnotherThreadStopsWithinOneStepAndLeaksNothing) {
  auto model = tiny("v1.5");
  GenerateOptions o;
  o.seed = 11;
  o.min_len = 1000;  // never stops by itself before max_len
  o.max_len = 40;
  const std::string text = "cancel me please";
  GenerateResult reference = generate(model, text, [&] { auto p = o; p.retry_badcase = false; p.max_len = 6; return p; }());

  Synthesis s(model, text, o);
  std::atomic<int64_t> steps_at_cancel{-1};
  std::atomic<bool> got_first{false};
  std::thread consumer([&] {
    try {
      while (auto c = s.next_chunk()) got_first = true;
      ADD_FAILURE() << "ran to the end despite cancel";
    } catch (const Cancelled&) {
    }
  });
  while (!got_first) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  steps_at_cancel = s.model_steps();
  s.cancel();
  consumer.join();
  EXPECT_LE(s.model_steps(), steps_at_cancel + 1) << "cancel must act within one model step";
  EXPECT_THROW(s.next_chunk(), Cancelled);
  // A new request afterwards is unaffected.
  GenerateOptions p = o;
  p.retry_badcase = false;
  p.max_len = 6;
  EXPECT_EQ(generate(model, text, p).waveform, reference.waveform);
}

TEST(Stream, ConcurrentRequestsEqualSequentialOnes) {
  auto model = tiny("v1.5");
  const std::vector<std::string> texts = {"first request", "the second one is here", "third", "fourth of them"};
  auto opts = [](int i) {
    GenerateOptions o;
    o.seed = 100 + i;
    o.min_len = 2;
    o.max_len = 7;
    return o;
  };
  std::vector<std::vector<float>> sequential, concurrent(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    Synthesis s(model, texts[i], opts(static_cast<int>(i)));
    std::vector<float> all;
    for (auto& c : stream_all(s)) all.insert(all.end(), c.samples.begin(), c.samples.end());
    sequential.push_back(all);
  }
  std::vector<std::thread> threads;
  for (size_t i = 0; i < texts.size(); ++i)
    threads.emplace_back([&, i] {
      Synthesis s(model, texts[i], opts(static_cast<int>(i)));
      for (auto& c : stream_all(s)) concurrent[i].insert(concurrent[i].end(), c.samples.begin(), c.samples.end());
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(concurrent[i], sequential[i]) << "request " << i;
  // Idle requests (constructed, not started) hold no model state.
  std::vector<std::unique_ptr<Synthesis>> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(std::make_unique<Synthesis>(model, texts[0], opts(i)));
  size_t bytes = 0;
  for (auto& s : idle) bytes += s->state_bytes();
  EXPECT_EQ(bytes, 0u);
  std::printf("100 idle requests: %zu bytes of model state (plus their text and options)\n", bytes);
}

TEST(Stream, LongTextIsSplitAndStreamedBackToBack) {
  auto model = tiny("v1.5");
  std::string text;
  const char* sentences[] = {"The quick brown fox jumps over the lazy dog. ", "你好，世界！这是一个很长的测试。",
                             "Streaming keeps going, clause after clause; nothing is lost? ", "是的。"};
  for (int i = 0; text.size() < 20000; ++i) text += sentences[i % 4];
  GenerateOptions o;
  o.seed = 5;
  o.min_len = 0;
  o.max_len = 1;  // one patch per segment keeps the test cheap; the split is what is tested
  o.max_segment_tokens = 400;
  const auto t0 = std::chrono::steady_clock::now();
  Synthesis s(model, text, o);
  ASSERT_GT(s.segments().size(), 5u);
  for (const auto& seg : s.segments()) EXPECT_LE(model->tokenizer().encode(seg).size(), 400u);
  int64_t expected_offset = 0, last_segment = -1, n = 0;
  while (auto c = s.next_chunk()) {
    EXPECT_EQ(c->offset, expected_offset);
    EXPECT_GE(c->segment, last_segment);
    last_segment = c->segment;
    expected_offset += static_cast<int64_t>(c->samples.size());
    ++n;
  }
  EXPECT_EQ(last_segment + 1, static_cast<int64_t>(s.segments().size()));
  EXPECT_EQ(n, static_cast<int64_t>(s.segments().size()));
  std::printf("20,000+ chars (%zu bytes): %zu segments, %lld samples, %.1f s\n", text.size(), s.segments().size(),
              static_cast<long long>(expected_offset),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// voxcpmsrc under GstHarness: non-live EOS, the speak signal, live clock waits, unlock, URI.
#include <chrono>

#include <gst/check/gsttestclock.h>
#include <gtest/gtest.h>

#include "gst_support.h"

namespace voxcpm::gsttest {
namespace {

constexpr GstClockTime kMs = GST_MSECOND;

std::string props(int chunks, const std::string& extra = "") {
  return "model-path=\"" + tiny_v15() + "\" seed=7 n-threads=1 min-len=" + std::to_string(chunks) +
         " max-len=" + std::to_string(chunks) + " " + extra;
}

class SrcTest : public ::testing::Test {
 protected:
  void SetUp() override { init_gst(); }
  void TearDown() override {
    release_harness(h, rec, src, bus);
  }
  // voxcpmsrc with `properties` in a harness, recording its output; not started yet.
  void create(const std::string& properties) {
    h = gst_harness_new_parse(("voxcpmsrc name=src " + properties).c_str());
    ASSERT_NE(h, nullptr);
    src = gst_bin_get_by_name(GST_BIN(h->element), "src");
    watch_element(h, src, bus, rec);
  }
  std::vector<GstStructure*> reports() { return pop_element_messages(bus, "voxcpm/synthesized-audio"); }

  GstHarness* h = nullptr;
  GstElement* src = nullptr;
  GstBus* bus = nullptr;
  Recorder* rec = nullptr;
};

TEST_F(SrcTest, NonLiveSpeaksTextAndQueuedTextThenEos) {
  create(props(3, "text=\"Hello there.\" timestamp-offset=1000000000"));
  g_signal_emit_by_name(src, "speak", "Queued before start.");
  gst_harness_play(h);
  ASSERT_TRUE(rec->wait_eos());
  const auto items = rec->items();
  const auto bufs = rec->buffers();
  ASSERT_EQ(bufs.size(), 6u);
  guint64 off = 0;
  for (size_t i = 0; i < bufs.size(); ++i) {
    const Item& b = bufs[i];
    EXPECT_EQ(b.samples.size(), static_cast<size_t>(kChunkV15));
    EXPECT_EQ(b.offset, off);
    EXPECT_EQ(b.offset_end, off + kChunkV15);
    EXPECT_EQ(b.pts, GST_SECOND + samples_to_time(off, kRateV15)) << i;
    EXPECT_EQ(b.duration, samples_to_time(off + kChunkV15, kRateV15) - samples_to_time(off, kRateV15));
    EXPECT_EQ(b.discont, i == 0) << i;
    EXPECT_FALSE(b.gap_flag);
    off += kChunkV15;
  }
  EXPECT_EQ(items.back().event, GST_EVENT_EOS);
  auto r = reports();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_STREQ(gst_structure_get_string(r[0], "text"), "Hello there.");
  EXPECT_STREQ(gst_structure_get_string(r[1], "text"), "Queued before start.");
  guint64 pts = 0;
  gst_structure_get_uint64(r[1], "pts", &pts);
  EXPECT_EQ(pts, GST_SECOND + samples_to_time(3 * kChunkV15, kRateV15));
  free_structures(r);
}

TEST_F(SrcTest, NonLiveWithoutTextEndsAtOnce) {
  create(props(2));
  gst_harness_play(h);
  ASSERT_TRUE(rec->wait_eos());
  EXPECT_EQ(rec->buffers().size(), 0u);
}

// Live: each chunk is released when the test clock reaches its end; idle time is GAP-flagged
// silence; `speak` while playing is spoken right after the current silence chunk.
TEST_F(SrcTest, LiveFollowsTheClockAndSpeaksOnSignal) {
  create(props(2, "is-live=true latency=100 text=\"Live start.\""));
  gst_harness_play(h);
  const GstClockTime chunk = samples_to_time(kChunkV15, kRateV15);
  EXPECT_EQ(gst_harness_query_latency(h), chunk + 100 * kMs);
  GstTestClock* clock = gst_harness_get_testclock(h);

  std::vector<GstBuffer*> got;
  auto crank_pull = [&]() {
    ASSERT_TRUE(gst_harness_crank_single_clock_wait(h));
    GstBuffer* b = gst_harness_pull(h);
    ASSERT_NE(b, nullptr);
    // Released exactly when the clock reached the end of its span.
    EXPECT_EQ(gst_clock_get_time(GST_CLOCK(clock)), GST_BUFFER_PTS(b) + GST_BUFFER_DURATION(b));
    got.push_back(b);
  };
  for (int i = 0; i < 4; ++i) crank_pull();  // 2 speech chunks, 2 silence chunks
  g_signal_emit_by_name(src, "speak", "More.");
  for (int i = 0; i < 4; ++i) crank_pull();  // at most one more silence chunk, then 2 speech chunks
  ASSERT_EQ(got.size(), 8u);
  guint64 off = 0;
  std::string pattern;
  for (GstBuffer* b : got) {
    EXPECT_EQ(GST_BUFFER_OFFSET(b), off);
    EXPECT_EQ(GST_BUFFER_PTS(b), samples_to_time(off, kRateV15));
    off = GST_BUFFER_OFFSET_END(b);
    pattern += GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_GAP) ? 'g' : 's';
    gst_buffer_unref(b);
  }
  EXPECT_TRUE(pattern == "ssggssgg" || pattern == "ssgggssg") << pattern;
  gst_object_unref(clock);
  auto r = reports();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_STREQ(gst_structure_get_string(r[1], "text"), "More.");
  free_structures(r);
}

// PLAYING→PAUSED unlocks a live source (the utterance in flight is dropped); PLAYING resumes it.
TEST_F(SrcTest, LivePauseAndResume) {
  create(props(3, "is-live=true text=\"Paused.\""));
  gst_harness_play(h);
  ASSERT_TRUE(gst_harness_crank_single_clock_wait(h));
  GstBuffer* b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_GAP));
  gst_buffer_unref(b);
  EXPECT_EQ(gst_element_set_state(h->element, GST_STATE_PAUSED), GST_STATE_CHANGE_NO_PREROLL);
  EXPECT_EQ(gst_element_set_state(h->element, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(gst_harness_crank_single_clock_wait(h)) << "no clock wait after resuming";
    b = gst_harness_pull(h);
    ASSERT_NE(b, nullptr);
    gst_buffer_unref(b);
  }
}

TEST_F(SrcTest, UnlockInterruptsGeneration) {
  create(props(400, "text=\"A long text that will be interrupted.\""));
  gst_harness_play(h);
  ASSERT_TRUE(rec->wait_buffers(2));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(gst_element_set_state(h->element, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  const double stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(stop_s, 2.0) << "unlock must interrupt the running synthesis";
  EXPECT_LT(rec->buffers().size(), 100u);
  auto r = reports();
  EXPECT_EQ(r.size(), 0u) << "an interrupted utterance posts no report";
  free_structures(r);
}

TEST(SrcUri, VoxcpmUriSetsTheText) {
  init_gst();
  GError* err = nullptr;
  GstElement* el = gst_element_make_from_uri(GST_URI_SRC, "voxcpm://Hello%20there.%20%C3%A9", nullptr, &err);
  ASSERT_NE(el, nullptr) << (err ? err->message : "");
  gchar* text = nullptr;
  g_object_get(el, "text", &text, NULL);
  EXPECT_STREQ(text, "Hello there. \xc3\xa9");
  g_free(text);
  gchar* uri = gst_uri_handler_get_uri(GST_URI_HANDLER(el));
  EXPECT_STREQ(uri, "voxcpm://Hello%20there.%20%C3%A9");
  g_free(uri);
  EXPECT_FALSE(gst_uri_handler_set_uri(GST_URI_HANDLER(el), "file:///x", nullptr));
  gst_object_unref(el);
}

}  // namespace
}  // namespace voxcpm::gsttest

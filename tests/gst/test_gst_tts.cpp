// voxcpmtts under GstHarness with the tiny VoxCPM1.5 model (44.1 kHz, 7056-sample chunks).
// min-len = max-len = N makes every utterance exactly N chunks whatever the random stop head does.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gst/check/gsttestclock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gst_support.h"
#include "support/golden.h"
#include "voxcpm/model_cache.h"
#include "voxcpm/wav.h"

namespace voxcpm::gsttest {
namespace {

using namespace std::chrono_literals;
constexpr GstClockTime kMs = GST_MSECOND;

std::string props(int chunks, const std::string& extra = "", const std::string& model = "") {
  return "model-path=\"" + (model.empty() ? tiny_v15() : model) + "\" seed=7 n-threads=1 min-len=" +
         std::to_string(chunks) + " max-len=" + std::to_string(chunks) + " " + extra;
}

class TtsTest : public ::testing::Test {
 protected:
  void SetUp() override { init_gst(); }
  void TearDown() override {
    release_harness(h, rec, tts, bus);
  }

  // voxcpmtts with `properties` in a harness (playing), text caps set, recording its output.
  void start(const std::string& properties, const char* text_caps = "text/x-raw,format=utf8",
             const char* audio_caps = nullptr) {
    h = gst_harness_new_parse(("voxcpmtts name=tts " + properties).c_str());
    ASSERT_NE(h, nullptr);
    tts = gst_bin_get_by_name(GST_BIN(h->element), "tts");
    ASSERT_NE(tts, nullptr);
    watch_element(h, tts, bus, rec);
    if (audio_caps) gst_harness_set_sink_caps_str(h, audio_caps);
    gst_harness_set_src_caps_str(h, text_caps);
  }

  void push(const std::string& text, GstClockTime pts = GST_CLOCK_TIME_NONE, GstClockTime dur = GST_CLOCK_TIME_NONE) {
    ASSERT_EQ(gst_harness_push(h, text_buffer(text, pts, dur)), GST_FLOW_OK);
  }
  void finish() {
    ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
    ASSERT_TRUE(rec->wait_eos()) << "no EOS";
  }
  std::vector<GstStructure*> reports() { return pop_element_messages(bus, "voxcpm/synthesized-audio"); }

  GstHarness* h = nullptr;
  GstElement* tts = nullptr;
  GstBus* bus = nullptr;
  Recorder* rec = nullptr;
};

// Checks that `bufs` are contiguous audio from sample `first`, each `chunk` samples or less.
void expect_contiguous(const std::vector<Item>& bufs, guint64 first, int rate) {
  guint64 off = first;
  for (size_t i = 0; i < bufs.size(); ++i) {
    const Item& b = bufs[i];
    const guint64 n = b.samples.size();
    EXPECT_EQ(b.offset, off) << "buffer " << i;
    EXPECT_EQ(b.offset_end, off + n) << "buffer " << i;
    EXPECT_EQ(b.pts, samples_to_time(off, rate)) << "buffer " << i;
    EXPECT_EQ(b.duration, samples_to_time(off + n, rate) - samples_to_time(off, rate)) << "buffer " << i;
    off += n;
  }
}

TEST_F(TtsTest, UntimestampedUtterancesAreContiguousAndEosDrains) {
  start(props(3));
  push("Hello there.");
  push("Second one.");
  push("Third!");
  finish();
  const auto items = rec->items();
  const auto bufs = rec->buffers();
  ASSERT_EQ(bufs.size(), 9u);
  for (const Item& b : bufs) EXPECT_EQ(b.samples.size(), static_cast<size_t>(kChunkV15));
  expect_contiguous(bufs, 0, kRateV15);
  for (size_t i = 0; i < bufs.size(); ++i) EXPECT_EQ(bufs[i].discont, i == 0) << "DISCONT on buffer " << i;
  // CAPS and SEGMENT before the first buffer, EOS after the last, no GAP in between.
  size_t first_buf = 0;
  while (!items[first_buf].is_buffer) ++first_buf;
  bool caps = false, segment = false;
  for (size_t i = 0; i < first_buf; ++i) {
    caps |= items[i].event == GST_EVENT_CAPS;
    segment |= items[i].event == GST_EVENT_SEGMENT;
  }
  EXPECT_TRUE(caps && segment);
  EXPECT_EQ(items.back().event, GST_EVENT_EOS);
  for (const Item& it : items) EXPECT_NE(it.event, GST_EVENT_GAP);
  for (const Item& it : items)
    if (it.event == GST_EVENT_CAPS) {
      EXPECT_NE(it.caps.find("F32LE"), std::string::npos) << it.caps;
      EXPECT_NE(it.caps.find("rate=(int)44100"), std::string::npos) << it.caps;
    }

  auto r = reports();
  ASSERT_EQ(r.size(), 3u);
  const char* texts[] = {"Hello there.", "Second one.", "Third!"};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_STREQ(gst_structure_get_string(r[i], "text"), texts[i]);
    guint64 pts = 0, dur = 0, latency = 0, input = 0;
    double rtf = 0;
    ASSERT_TRUE(gst_structure_get_uint64(r[i], "pts", &pts));
    ASSERT_TRUE(gst_structure_get_uint64(r[i], "audio-duration", &dur));
    ASSERT_TRUE(gst_structure_get_uint64(r[i], "first-chunk-latency", &latency));
    ASSERT_TRUE(gst_structure_get_uint64(r[i], "input-duration", &input));
    ASSERT_TRUE(gst_structure_get_double(r[i], "rtf", &rtf));
    EXPECT_EQ(pts, samples_to_time(i * 3 * kChunkV15, kRateV15));
    EXPECT_EQ(dur, samples_to_time(3 * kChunkV15, kRateV15));
    EXPECT_GT(latency, 0u);
    EXPECT_EQ(input, GST_CLOCK_TIME_NONE);
    EXPECT_GT(rtf, 0.0);
  }
  free_structures(r);
}

// Cues at 1.0 s and 1.25 s, 200 ms each; speech is 3 chunks = 480 ms.
class OverflowTest : public TtsTest {
 protected:
  void run(const char* mode) {
    start(props(3, std::string("overflow=") + mode));
    push("First cue.", 1000 * kMs, 200 * kMs);
    push("Second cue.", 1250 * kMs, 200 * kMs);
    finish();
  }
  static constexpr guint64 k1s = 44100, k1250 = 55125, k200 = 8820;
};

TEST_F(OverflowTest, ClipDropsSpeechBeyondTheCue) {
  run("clip");
  const auto bufs = rec->buffers();
  ASSERT_EQ(bufs.size(), 4u);  // 7056 + 1764 per cue
  expect_contiguous({bufs[0], bufs[1]}, k1s, kRateV15);
  expect_contiguous({bufs[2], bufs[3]}, k1250, kRateV15);
  EXPECT_EQ(bufs[1].offset_end, k1s + k200);
  EXPECT_EQ(bufs[3].offset_end, k1250 + k200);
  EXPECT_EQ(bufs[0].pts, 1000 * kMs) << "first chunk at the text buffer's PTS";
  for (size_t i = 0; i < bufs.size(); ++i) EXPECT_EQ(bufs[i].discont, i == 0) << i;
  // Silence before and between the cues is announced with GAP events.
  std::vector<std::pair<GstClockTime, GstClockTime>> gaps;
  for (const Item& it : rec->items())
    if (it.event == GST_EVENT_GAP) gaps.emplace_back(it.pts, it.duration);
  ASSERT_EQ(gaps.size(), 2u);
  EXPECT_EQ(gaps[0], std::make_pair(GstClockTime(0), 1000 * kMs));
  EXPECT_EQ(gaps[1], std::make_pair(1200 * kMs, 50 * kMs));
  auto r = reports();
  ASSERT_EQ(r.size(), 2u);
  gboolean clipped = FALSE;
  guint64 dur = 0, input = 0;
  gst_structure_get_boolean(r[0], "clipped", &clipped);
  gst_structure_get_uint64(r[0], "audio-duration", &dur);
  gst_structure_get_uint64(r[0], "input-duration", &input);
  EXPECT_TRUE(clipped);
  EXPECT_EQ(dur, 200 * kMs);
  EXPECT_EQ(input, 200 * kMs);
  free_structures(r);
}

TEST_F(OverflowTest, OverlapKeepsSpeechAndStartsEachCueOnTime) {
  run("overlap");
  const auto bufs = rec->buffers();
  ASSERT_EQ(bufs.size(), 6u);
  expect_contiguous({bufs.begin(), bufs.begin() + 3}, k1s, kRateV15);
  expect_contiguous({bufs.begin() + 3, bufs.end()}, k1250, kRateV15);
  for (size_t i = 0; i < bufs.size(); ++i)
    EXPECT_EQ(bufs[i].discont, i == 0 || i == 3) << "DISCONT where the timeline jumps back, buffer " << i;
}

TEST_F(OverflowTest, ShiftDelaysLaterCuesSoNothingOverlaps) {
  run("shift");
  const auto bufs = rec->buffers();
  ASSERT_EQ(bufs.size(), 6u);
  expect_contiguous(bufs, k1s, kRateV15);
  for (size_t i = 0; i < bufs.size(); ++i) EXPECT_EQ(bufs[i].discont, i == 0) << i;
  auto r = reports();
  ASSERT_EQ(r.size(), 2u);
  guint64 pts = 0;
  gst_structure_get_uint64(r[1], "pts", &pts);
  EXPECT_EQ(pts, samples_to_time(k1s + 3 * kChunkV15, kRateV15));
  free_structures(r);
}

TEST_F(TtsTest, UntimestampedTextFollowsTheOutputPosition) {
  start(props(2, "overflow=overlap"));
  push("At one second.", GST_SECOND);
  push("Right after.");
  finish();
  const auto bufs = rec->buffers();
  ASSERT_EQ(bufs.size(), 4u);
  expect_contiguous(bufs, 44100, kRateV15);
  for (size_t i = 0; i < bufs.size(); ++i) EXPECT_EQ(bufs[i].discont, i == 0) << i;
}

TEST_F(TtsTest, GapEventsPassOnlyBeyondTheSpeech) {
  start(props(3, "overflow=overlap"));
  push("Speech.", 0);  // 0 .. 480 ms
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_gap(100 * kMs, 200 * kMs)));  // inside the speech: dropped
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_gap(400 * kMs, 600 * kMs)));  // trimmed to 480..1000 ms
  push("Later.", 1000 * kMs);
  finish();
  std::vector<Item> order;
  for (const Item& it : rec->items())
    if (it.is_buffer || it.event == GST_EVENT_GAP) order.push_back(it);
  ASSERT_EQ(order.size(), 7u);
  EXPECT_EQ(order[3].event, GST_EVENT_GAP);
  EXPECT_EQ(order[3].pts, samples_to_time(3 * kChunkV15, kRateV15));
  EXPECT_EQ(order[3].pts + order[3].duration, 1000 * kMs);
  EXPECT_EQ(order[4].pts, 1000 * kMs);
  EXPECT_FALSE(order[4].discont) << "a GAP event covers the silence: no DISCONT";
}

TEST_F(TtsTest, S16OutputMatchesF32) {
  start(props(2));
  push("Format test.");
  finish();
  const std::vector<float> f32 = rec->all_samples();
  TearDown();
  h = nullptr, tts = nullptr, bus = nullptr, rec = nullptr;
  start(props(2), "text/x-raw,format=utf8", "audio/x-raw,format=S16LE,channels=1,rate=44100,layout=interleaved");
  push("Format test.");
  finish();
  for (const Item& it : rec->items()) {
    if (it.event == GST_EVENT_CAPS) {
      EXPECT_NE(it.caps.find("S16LE"), std::string::npos);
    }
  }
  const std::vector<float> s16 = rec->all_samples();
  ASSERT_EQ(s16.size(), 2u * kChunkV15);
  EXPECT_LE(max_abs_diff(f32, s16), 0.6 / 32767 + 1e-6);
}

TEST_F(TtsTest, PangoMarkupIsStrippedAndInvalidUtf8Dropped) {
  start(props(2), "text/x-raw,format=pango-markup");
  push("<b>Hi</b> &amp; <i>bye</i>");
  push(std::string("bad \xff\xfe bytes"));
  push("   ");  // nothing to say
  finish();
  EXPECT_EQ(rec->buffers().size(), 2u);
  auto r = reports();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_STREQ(gst_structure_get_string(r[0], "text"), "Hi & bye");
  free_structures(r);
  GstMessage* w = pop_message(bus, GST_MESSAGE_WARNING);
  ASSERT_NE(w, nullptr) << "invalid UTF-8 must be reported";
  GError* err = nullptr;
  gst_message_parse_warning(w, &err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE)) << err->message;
  g_error_free(err);
  gst_message_unref(w);
}

TEST_F(TtsTest, FlushCancelsTheUtteranceQuickly) {
  start(props(400));  // ~400 model steps: seconds of work if not cancelled
  push("A very long utterance that we will interrupt.");
  ASSERT_TRUE(rec->wait_buffers(2));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  const double flush_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(flush_s, 2.0) << "FLUSH_START must cancel within one model step";
  EXPECT_LT(rec->buffers().size(), 100u) << "the flush waited for the utterance to finish";
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  const size_t before = rec->items().size();
  g_object_set(tts, "min-len", 2, "max-len", 2, NULL);
  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_segment(&seg)));
  push("Short.");
  finish();
  const auto items = rec->items();
  std::vector<Item> after;
  for (size_t i = before; i < items.size(); ++i)
    if (items[i].is_buffer) after.push_back(items[i]);
  ASSERT_EQ(after.size(), 2u) << "nothing of the flushed utterance may follow FLUSH_STOP";
  expect_contiguous(after, 0, kRateV15);
  EXPECT_TRUE(after[0].discont);
  auto r = reports();
  ASSERT_EQ(r.size(), 1u) << "the cancelled utterance posts no report";
  EXPECT_STREQ(gst_structure_get_string(r[0], "text"), "Short.");
  free_structures(r);
}

// All output late (clock far ahead): the task computes without pushing, so only the cancel can
// stop it; without it the flush would wait for all 400 steps.
TEST_F(TtsTest, FlushCancelsEvenWhenNothingIsPushed) {
  start(props(400, "latency=0 overflow=overlap inference-timesteps=40"));
  gst_harness_set_upstream_latency(h, 0);
  GstTestClock* clock = gst_harness_get_testclock(h);
  gst_test_clock_set_time(clock, 1000 * GST_SECOND);
  gst_object_unref(clock);
  push("Everything of this is late.", 0);
  std::this_thread::sleep_for(300ms);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  const double flush_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(flush_s, 1.0) << "FLUSH_START must cancel the synthesis within one model step";
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  EXPECT_EQ(rec->buffers().size(), 0u);
  auto r = reports();
  EXPECT_EQ(r.size(), 0u);
  free_structures(r);
}

TEST_F(TtsTest, DrainQueryReturnsAfterEverythingIsSpoken) {
  start(props(2));
  push("One.");
  push("Two.");
  GstQuery* q = gst_query_new_drain();
  gst_pad_peer_query(h->srcpad, q);
  gst_query_unref(q);
  EXPECT_EQ(rec->buffers().size(), 4u);
}

TEST_F(TtsTest, LatencyLiveAddsOwnLatencyAlsoInPaused) {
  start(props(2, "latency=300"));
  gst_harness_set_upstream_latency(h, 100 * kMs);
  EXPECT_EQ(gst_harness_query_latency(h), 400 * kMs);
  ASSERT_NE(gst_element_set_state(h->element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  EXPECT_EQ(gst_harness_query_latency(h), 400 * kMs);
}

TEST(TtsLatency, NonLiveAndLiveUpstream) {
  init_gst();
  for (bool live : {false, true}) {
    const std::string desc = std::string("appsrc name=src format=time ") +
                             (live ? "is-live=true min-latency=50000000" : "is-live=false") +
                             " caps=text/x-raw,format=utf8 ! voxcpmtts name=tts latency=300 " +
                             props(2) + " ! fakesink";
    GError* err = nullptr;
    GstElement* pipe = gst_parse_launch(desc.c_str(), &err);
    ASSERT_NE(pipe, nullptr) << (err ? err->message : "");
    ASSERT_NE(gst_element_set_state(pipe, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
    GstElement* tts = gst_bin_get_by_name(GST_BIN(pipe), "tts");
    GstPad* src = gst_element_get_static_pad(tts, "src");
    GstQuery* q = gst_query_new_latency();
    ASSERT_TRUE(gst_pad_query(src, q));
    gboolean is_live;
    GstClockTime min, max;
    gst_query_parse_latency(q, &is_live, &min, &max);
    EXPECT_EQ(is_live, live);
    EXPECT_EQ(min, live ? 350 * kMs : 0);
    gst_query_unref(q);
    gst_object_unref(src);
    gst_object_unref(tts);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pipe);
  }
}

// Live upstream, clock at 5 s, latency 1 s: a cue at 0 s is entirely late (dropped, QoS + warning);
// a cue at 6 s is on time.
TEST_F(TtsTest, LateOutputInLivePipelinesIsDroppedAndReported) {
  start(props(3, "latency=1000 overflow=overlap"));
  gst_harness_set_upstream_latency(h, 0);
  GstTestClock* clock = gst_harness_get_testclock(h);
  gst_test_clock_set_time(clock, 5 * GST_SECOND);
  gst_object_unref(clock);
  push("Too late.", 0, 10 * GST_SECOND);
  push("On time.", 6 * GST_SECOND);
  finish();
  const auto bufs = rec->buffers();
  ASSERT_EQ(bufs.size(), 3u);
  expect_contiguous(bufs, 6 * 44100, kRateV15);
  EXPECT_TRUE(bufs[0].discont);
  GstMessage* qos = pop_message(bus, GST_MESSAGE_QOS);
  ASSERT_NE(qos, nullptr);
  gst_message_unref(qos);
  GstMessage* w = pop_message(bus, GST_MESSAGE_WARNING);
  ASSERT_NE(w, nullptr);
  gst_message_unref(w);
  auto r = reports();
  ASSERT_EQ(r.size(), 2u);
  guint64 late = 0, dur = 1;
  gst_structure_get_uint64(r[0], "late-samples", &late);
  gst_structure_get_uint64(r[0], "audio-duration", &dur);
  EXPECT_EQ(late, 3u * kChunkV15);
  EXPECT_EQ(dur, 0u);
  free_structures(r);
}

TEST_F(TtsTest, NonTimeSegmentIsAnError) {
  start(props(2));
  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_BYTES);
  gst_harness_push_event(h, gst_event_new_segment(&seg));  // a sticky event: "stored" even when refused
  GstMessage* e = pop_message(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(e, nullptr);
  GError* err = nullptr;
  gst_message_parse_error(e, &err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT));
  g_error_free(err);
  gst_message_unref(e);
}

// Streamed chunks == the non-streaming `voxcpm-synth` waveform for the same text and seed.
TEST_F(TtsTest, StreamedSamplesEqualVoxcpmSynth) {
  const std::string tmp = test::make_temp_dir(), ref = tmp + "/ref.wav";
  std::string out;
  const std::string cmd = test::build_root() + "/tools/voxcpm-synth --model '" + tiny_v15() +
                          "' --text 'Hello there, streaming world.' --seed 7 --min-len 4 --max-len 4 "
                          "--no-retry-badcase --threads 1 --format f32 -o '" + ref + "'";
  ASSERT_EQ(run_command(cmd, &out), 0) << out;
  const Audio expected = read_wav(ref);
  start(props(4));
  push("Hello there, streaming world.");
  finish();
  const std::vector<float> got = rec->all_samples();
  EXPECT_EQ(expected.sample_rate, kRateV15);
  ASSERT_EQ(got.size(), expected.samples.size());
  EXPECT_LE(max_abs_diff(got, expected.samples), 1e-5);
}

// Two elements asking for the same model share one instance, and synthesize concurrently.
TEST(TtsSharing, TwoElementsShareOneModelConcurrently) {
  init_gst();
  const ModelCache::Stats before = ModelCache::global().stats();
  GstHarness* h[2];
  GstElement* el[2];
  Recorder* rec[2];
  for (int i = 0; i < 2; ++i) {
    h[i] = gst_harness_new_parse(("voxcpmtts name=tts " + props(4, "", tiny_v1())).c_str());
    el[i] = gst_bin_get_by_name(GST_BIN(h[i]->element), "tts");
    GstPad* src = gst_element_get_static_pad(el[i], "src");
    rec[i] = new Recorder(src);
    gst_object_unref(src);
    gst_harness_set_src_caps_str(h[i], "text/x-raw,format=utf8");
  }
  const ModelCache::Stats after = ModelCache::global().stats();
  EXPECT_EQ(after.loads, before.loads + 1) << "the second element must not load the model again";
  EXPECT_EQ(after.hits, before.hits + 1);
  {
    auto model = ModelCache::global().get(tiny_v1(), LoadOptions{"cpu", "auto"});
    EXPECT_EQ(model.use_count(), 3) << "held by both elements and this test";
  }
  gint rate = 0;
  g_object_get(el[0], "sample-rate", &rate, NULL);
  EXPECT_EQ(rate, kRateV1);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(gst_harness_push(h[i], text_buffer("Shared model.")), GST_FLOW_OK);
    ASSERT_TRUE(gst_harness_push_event(h[i], gst_event_new_eos()));
  }
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(rec[i]->wait_eos());
  const auto a = rec[0]->all_samples(), b = rec[1]->all_samples();
  EXPECT_EQ(a.size(), 4u * kChunkV1);
  EXPECT_EQ(max_abs_diff(a, b), 0.0) << "same seed and text on one shared model";
  for (int i = 0; i < 2; ++i) {
    gst_harness_teardown(h[i]);  // stops the streaming thread before its probe's recorder goes
    delete rec[i];
    gst_object_unref(el[i]);
  }
}

// ---------------------------------------------------------------------------------------------
// Model loading, properties, caps

// Sets `factory` with model-path `dir` to READY; expects failure with a RESOURCE error of `code`
// whose message or debug text contains `needle`.
void expect_load_error(const char* factory, const std::string& dir, GstResourceError code, const std::string& needle) {
  GstElement* el = gst_element_factory_make(factory, nullptr);
  ASSERT_NE(el, nullptr);
  g_object_set(el, "model-path", dir.c_str(), NULL);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(el, bus);
  EXPECT_EQ(gst_element_set_state(el, GST_STATE_READY), GST_STATE_CHANGE_FAILURE) << factory << " " << dir;
  GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(m, nullptr) << "no element error";
  GError* err = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(m, &err, &debug);
  EXPECT_TRUE(g_error_matches(err, GST_RESOURCE_ERROR, code)) << err->message;
  const std::string all = std::string(err->message) + " | " + (debug ? debug : "");
  EXPECT_NE(all.find(needle), std::string::npos) << all;
  g_error_free(err);
  g_free(debug);
  gst_message_unref(m);
  gst_element_set_state(el, GST_STATE_NULL);
  gst_bus_set_flushing(bus, TRUE);  // its messages hold the element, which holds the bus
  gst_object_unref(el);
  gst_object_unref(bus);
}

TEST(TtsModel, MissingOrCorruptModelFailsTheStateChange) {
  init_gst();
  const std::string tmp = test::make_temp_dir();
  for (const char* factory : {"voxcpmtts", "voxcpmsrc"}) {
    expect_load_error(factory, tmp + "/nowhere", GST_RESOURCE_ERROR_NOT_FOUND, tmp + "/nowhere");
  }
  // Garbage everywhere: the config is the first file read.
  const std::string bad = tmp + "/garbage";
  ASSERT_EQ(mkdir(bad.c_str(), 0755), 0);
  for (const char* f : {"config.json", "model.safetensors", "audiovae.pth", "tokenizer.json"})
    std::ofstream(bad + "/" + f) << "\x01\x02 not a model file";
  expect_load_error("voxcpmtts", bad, GST_RESOURCE_ERROR_SETTINGS, "config.json");
  // A real config and tokenizer with broken weights: the error names the weights file.
  const std::string bad2 = tmp + "/badweights";
  ASSERT_EQ(mkdir(bad2.c_str(), 0755), 0);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "audiovae.pth"})
    ASSERT_EQ(symlink((tiny_v15() + "/" + f).c_str(), (bad2 + "/" + f).c_str()), 0);
  std::ofstream(bad2 + "/model.safetensors") << "garbage";
  expect_load_error("voxcpmsrc", bad2, GST_RESOURCE_ERROR_SETTINGS, "model.safetensors");
}

TEST(TtsModel, BadSettingsFailReadyToPaused) {
  init_gst();
  struct Case {
    const char* prop;
    const char* value;
    const char* needle;
  } cases[] = {{"reference-wav-path", "/tmp/x.wav", "VoxCPM2"}, {"prompt-wav-path", "/nonexistent/p.wav", "prompt"}};
  for (const Case& c : cases) {
    GstElement* el = gst_element_factory_make("voxcpmtts", nullptr);
    g_object_set(el, "model-path", tiny_v15().c_str(), c.prop, c.value, NULL);
    GstBus* bus = gst_bus_new();
    gst_element_set_bus(el, bus);
    ASSERT_EQ(gst_element_set_state(el, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
    EXPECT_EQ(gst_element_set_state(el, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE) << c.prop;
    GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    ASSERT_NE(m, nullptr) << c.prop;
    GError* err = nullptr;
    gchar* debug = nullptr;
    gst_message_parse_error(m, &err, &debug);
    EXPECT_NE(std::string(debug ? debug : "").find(c.needle), std::string::npos) << debug;
    g_error_free(err);
    g_free(debug);
    gst_message_unref(m);
    gst_element_set_state(el, GST_STATE_NULL);
    gst_bus_set_flushing(bus, TRUE);  // its messages hold the element, which holds the bus
    gst_object_unref(el);
    gst_object_unref(bus);
  }
}

TEST(TtsProperties, ValidatedAndModelInfoAfterReady) {
  init_gst();
  GstElement* el = gst_element_factory_make("voxcpmtts", nullptr);
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(el, bus);
  gchar* device = nullptr;
  g_object_set(el, "device", "gpu7", NULL);  // invalid: warning, unchanged
  g_object_get(el, "device", &device, NULL);
  EXPECT_STREQ(device, "auto");
  g_free(device);
  GstMessage* w = gst_bus_pop_filtered(bus, GST_MESSAGE_WARNING);
  EXPECT_NE(w, nullptr);
  if (w) gst_message_unref(w);
  g_object_set(el, "device", "cpu", NULL);
  g_object_get(el, "device", &device, NULL);
  EXPECT_STREQ(device, "cpu");
  g_free(device);

  // Before READY: no model, any rate; after: the model's rate only.
  gint rate = -1;
  gchar* info = nullptr;
  g_object_get(el, "sample-rate", &rate, "model-info", &info, NULL);
  EXPECT_EQ(rate, 0);
  EXPECT_EQ(info, nullptr);
  GstPad* src = gst_element_get_static_pad(el, "src");
  GstCaps* caps = gst_pad_query_caps(src, nullptr);
  EXPECT_FALSE(gst_caps_is_fixed(caps));
  gst_caps_unref(caps);

  g_object_set(el, "model-path", tiny_v15().c_str(), NULL);
  ASSERT_EQ(gst_element_set_state(el, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  g_object_get(el, "sample-rate", &rate, "model-info", &info, NULL);
  EXPECT_EQ(rate, kRateV15);
  ASSERT_NE(info, nullptr);
  EXPECT_NE(std::string(info).find("VoxCPM1.5"), std::string::npos) << info;
  g_free(info);
  caps = gst_pad_query_caps(src, nullptr);
  GstCaps* expected = gst_caps_from_string(
      "audio/x-raw, format={F32LE,S16LE}, layout=interleaved, channels=1, rate=44100");
  EXPECT_TRUE(gst_caps_is_equal(caps, expected)) << gst_caps_to_string(caps);
  gst_caps_unref(caps);
  gst_caps_unref(expected);
  gst_object_unref(src);

  // The model cannot change once PAUSED.
  ASSERT_NE(gst_element_set_state(el, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  g_object_set(el, "model-path", "/elsewhere", NULL);
  gchar* path = nullptr;
  g_object_get(el, "model-path", &path, NULL);
  EXPECT_EQ(std::string(path), tiny_v15());
  g_free(path);
  gst_element_set_state(el, GST_STATE_NULL);
  gst_bus_set_flushing(bus, TRUE);  // its messages hold the element, which holds the bus
  gst_object_unref(el);
  gst_object_unref(bus);
}

}  // namespace
}  // namespace voxcpm::gsttest

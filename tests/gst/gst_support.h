// Helpers for the voxcpm plugin tests: GStreamer init, an in-order record of what an element
// pushes (buffers and events, interleaved), bus messages, and running command-line tools.
#pragma once

#include <gst/audio/audio.h>
#include <gst/check/gstharness.h>
#include <gst/gst.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

namespace voxcpm::gsttest {

// gst_init once; fails the test if the plugin is not found (GST_PLUGIN_PATH from meson).
void init_gst();

// Tiny fixture models and their chunk sizes.
std::string tiny_v15();  // 44100 Hz, 7056 samples per chunk
std::string tiny_v1();   // 16000 Hz, 1280 samples per chunk
constexpr int kRateV15 = 44100, kChunkV15 = 7056;
constexpr int kRateV1 = 16000, kChunkV1 = 1280;

inline GstClockTime samples_to_time(guint64 n, int rate) { return gst_util_uint64_scale_int(n, GST_SECOND, rate); }

// One buffer or event that went through a pad, with the buffer's samples as float.
struct Item {
  bool is_buffer = false;
  GstEventType event = GST_EVENT_UNKNOWN;
  GstClockTime pts = GST_CLOCK_TIME_NONE, duration = GST_CLOCK_TIME_NONE;
  guint64 offset = GST_BUFFER_OFFSET_NONE, offset_end = GST_BUFFER_OFFSET_NONE;
  bool discont = false, gap_flag = false;
  std::vector<float> samples;
  std::string caps;  // CAPS events
};

// Records, in order, what flows downstream through `pad` (a probe: the data still flows on).
class Recorder {
 public:
  explicit Recorder(GstPad* pad);
  ~Recorder();
  // Waits until an EOS went through (false on timeout).
  bool wait_eos(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Waits until at least `n` buffers went through (false on timeout).
  bool wait_buffers(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  std::vector<Item> items();
  std::vector<Item> buffers();
  std::vector<float> all_samples();
  void clear();

 private:
  static GstPadProbeReturn probe(GstPad* pad, GstPadProbeInfo* info, gpointer data);
  GstPad* pad_;
  gulong id_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<Item> items_;
  GstAudioFormat format_ = GST_AUDIO_FORMAT_UNKNOWN;
};

// For a harness test: gives the harness's bin a bus of our own (`bus`) and records what leaves
// `element`'s src pad (`rec`).
void watch_element(GstHarness* h, GstElement* element, GstBus*& bus, Recorder*& rec);
// Ends such a test in the order its streaming thread needs: the harness (stopping the element)
// before the Recorder whose probe that thread calls, then our refs; the bus set flushing first,
// because queued messages hold the elements (and the bin holds the bus). Null pointers are
// skipped; every pointer is null afterwards.
void release_harness(GstHarness*& h, Recorder*& rec, GstElement*& element, GstBus*& bus);

// Element messages named `name` on `bus` (popped), in order.
std::vector<GstStructure*> pop_element_messages(GstBus* bus, const char* name);
// The first message of `type` still on `bus` (popped), or NULL.
GstMessage* pop_message(GstBus* bus, GstMessageType type);
void free_structures(std::vector<GstStructure*>& v);

// Runs a shell command, returns the exit status; `output` gets stdout+stderr.
int run_command(const std::string& cmd, std::string* output);

// A `text/x-raw` buffer holding `text`.
GstBuffer* text_buffer(const std::string& text, GstClockTime pts = GST_CLOCK_TIME_NONE,
                       GstClockTime duration = GST_CLOCK_TIME_NONE);

// max |a-b| over equal-length vectors (infinity if the lengths differ).
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace voxcpm::gsttest

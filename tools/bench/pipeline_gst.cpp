#include <malloc.h>

#include <chrono>
#include <functional>
#include <memory>
#include <cstdio>
#include <stdexcept>

#include <gst/gst.h>

#include "bench/pipeline.h"

namespace voxcpm::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

// The first error message on the bus, if any.
std::string bus_error(GstElement* pipeline) {
  GstBus* bus = gst_element_get_bus(pipeline);
  std::string msg;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
    GError* err = nullptr;
    gchar* dbg = nullptr;
    gst_message_parse_error(m, &err, &dbg);
    if (msg.empty() && err) msg = err->message;
    if (err) g_error_free(err);
    g_free(dbg);
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  return msg;
}

}  // namespace

Pipeline::Pipeline(const PipelineSettings& s) : s_(s) {
  GError* err = nullptr;
  if (!gst_init_check(nullptr, nullptr, &err)) {
    note_ = std::string("GStreamer does not initialise: ") + (err ? err->message : "?");
    if (err) g_error_free(err);
    return;
  }
  GstRegistry* reg = gst_registry_get();
  GstPluginFeature* f = gst_registry_lookup_feature(reg, "voxcpmtts");
  if (!f && !s_.plugin_dir.empty()) {
    gst_registry_scan_path(reg, s_.plugin_dir.c_str());
    f = gst_registry_lookup_feature(reg, "voxcpmtts");
  }
  if (!f) {
    note_ = "element voxcpmtts not found (set GST_PLUGIN_PATH to the folder of libgstvoxcpm.so)";
    return;
  }
  gst_object_unref(f);
  for (const char* e : {"appsrc", "appsink"}) {
    GstElementFactory* fac = gst_element_factory_find(e);
    if (!fac) {
      note_ = std::string("element ") + e + " not found (gstreamer1.0-plugins-base)";
      return;
    }
    gst_object_unref(fac);
  }
  available_ = true;
}

// A started `appsrc ! voxcpmtts ! appsink` pipeline.
struct Pipeline::Running {
  GstElement* pipeline = nullptr;
  GstElement* src = nullptr;
  GstElement* sink = nullptr;
  ~Running() {
    if (!pipeline) return;
    gst_element_set_state(pipeline, GST_STATE_NULL);
    if (src) gst_object_unref(src);
    if (sink) gst_object_unref(sink);
    gst_object_unref(pipeline);
  }
};

std::unique_ptr<Pipeline::Running> Pipeline::start() {
  if (!available_) throw std::runtime_error(note_);
  const std::string desc =
      "appsrc name=src format=time caps=text/x-raw,format=utf8 ! voxcpmtts name=tts model-path=" + quote(s_.model_dir) +
      " device=" + s_.device + " dtype=" + s_.dtype + " n-threads=" + std::to_string(s_.threads) +
      " inference-timesteps=" + std::to_string(s_.timesteps) + " cfg-value=" + std::to_string(s_.cfg) +
      " seed=" + std::to_string(s_.seed) + " min-len=" + std::to_string(s_.min_len) +
      " max-len=" + std::to_string(s_.max_len) + " ! appsink name=sink sync=false";
  GError* err = nullptr;
  GstElement* pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!pipeline || err) {
    std::string m = err ? err->message : "gst_parse_launch failed";
    if (err) g_error_free(err);
    if (pipeline) gst_object_unref(pipeline);
    throw std::runtime_error("pipeline: " + m);
  }
  auto r = std::make_unique<Running>();
  r->pipeline = pipeline;
  r->src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  r->sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  // NULL→READY loads the model (synchronously, before set_state returns).
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    const std::string m = bus_error(pipeline);
    throw std::runtime_error("pipeline does not start: " + (m.empty() ? std::string("state change failed") : m));
  }
  return r;
}

// Pushes `text` (then EOS when `eos`) and pulls audio until EOS, or until the audio of the
// utterance is complete (`eos` false: the pipeline stays usable, nothing else is pulled).
PipelineRun Pipeline::speak(Running& p, const std::string& text, bool eos) {
  PipelineRun r;
  GstBuffer* buf = gst_buffer_new_allocate(nullptr, text.size(), nullptr);
  gst_buffer_fill(buf, 0, text.data(), text.size());
  GST_BUFFER_PTS(buf) = 0;
  const auto t0 = Clock::now();
  GstFlowReturn flow = GST_FLOW_OK;
  g_signal_emit_by_name(p.src, "push-buffer", buf, &flow);
  gst_buffer_unref(buf);
  if (eos) g_signal_emit_by_name(p.src, "end-of-stream", &flow);
  bool first = true;
  int width = 4;
  while (true) {
    GstSample* sample = nullptr;
    // Without EOS the end of the utterance is a pause in the output (the element is idle).
    const GstClockTime wait = eos || first ? 600 * GST_SECOND : 2 * GST_SECOND;
    g_signal_emit_by_name(p.sink, "try-pull-sample", wait, &sample);
    if (!sample) break;  // EOS (or timeout)
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    GstBuffer* b = gst_sample_get_buffer(sample);
    GstCaps* caps = gst_sample_get_caps(sample);
    if (caps && r.rate == 0) {
      const GstStructure* st = gst_caps_get_structure(caps, 0);
      gst_structure_get_int(st, "rate", &r.rate);
      const gchar* fmt = gst_structure_get_string(st, "format");
      if (fmt && std::string(fmt).rfind("S16", 0) == 0) width = 2;
    }
    const gsize bytes = b ? gst_buffer_get_size(b) : 0;
    if (bytes > 0 && first) {
      r.ttfa_s = t;
      first = false;
    }
    r.samples += static_cast<long long>(bytes) / width;
    gst_sample_unref(sample);
  }
  r.total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::string m = bus_error(p.pipeline);
  if (!m.empty()) throw std::runtime_error("pipeline error: " + m);
  if (first) throw std::runtime_error("pipeline produced no audio");
  return r;
}

PipelineRun Pipeline::run(const std::string& text) {
  std::unique_ptr<Running> p = start();
  return speak(*p, text, true);
}

double Pipeline::second_element_mb(const std::string& text, const std::function<double()>& rss_mb) {
  std::unique_ptr<Running> a = start();
  speak(*a, text, false);
  // Heap pages freed earlier (the probes' matrices, finished runs) are still resident and would
  // take the second element's allocations without growing the RSS: hand them back first.
  malloc_trim(0);
  const double one = rss_mb();
  std::unique_ptr<Running> b = start();
  speak(*b, text, false);
  return rss_mb() - one;
}

}  // namespace voxcpm::bench

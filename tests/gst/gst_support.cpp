#include "gst_support.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "support/golden.h"

namespace voxcpm::gsttest {

void init_gst() {
  static bool done = false;
  if (!done) {
    gst_init(nullptr, nullptr);
    done = true;
  }
  GstPlugin* plugin = gst_registry_find_plugin(gst_registry_get(), "voxcpm");
  ASSERT_NE(plugin, nullptr) << "plugin voxcpm not found (GST_PLUGIN_PATH=" << (g_getenv("GST_PLUGIN_PATH") ?: "")
                             << ")";
  gst_object_unref(plugin);
}

std::string tiny_v15() { return test::tiny_model_dir("v1.5"); }
std::string tiny_v1() { return test::tiny_model_dir("v1"); }

Recorder::Recorder(GstPad* pad) : pad_(GST_PAD(gst_object_ref(pad))) {
  id_ = gst_pad_add_probe(pad_, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_DATA_DOWNSTREAM), probe, this,
                          nullptr);
}

Recorder::~Recorder() {
  gst_pad_remove_probe(pad_, id_);
  gst_object_unref(pad_);
}

GstPadProbeReturn Recorder::probe(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* self = static_cast<Recorder*>(data);
  Item it;
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    it.is_buffer = true;
    it.pts = GST_BUFFER_PTS(buf);
    it.duration = GST_BUFFER_DURATION(buf);
    it.offset = GST_BUFFER_OFFSET(buf);
    it.offset_end = GST_BUFFER_OFFSET_END(buf);
    it.discont = GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT);
    it.gap_flag = GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_GAP);
    GstMapInfo map;
    if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
      std::lock_guard<std::mutex> lk(self->m_);
      if (self->format_ == GST_AUDIO_FORMAT_S16LE) {
        const auto* s = reinterpret_cast<const gint16*>(map.data);
        for (size_t i = 0; i < map.size / 2; ++i) it.samples.push_back(s[i] / 32767.0f);
      } else {
        const auto* f = reinterpret_cast<const float*>(map.data);
        it.samples.assign(f, f + map.size / 4);
      }
      gst_buffer_unmap(buf, &map);
    }
  } else if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info);
    it.event = GST_EVENT_TYPE(ev);
    if (it.event == GST_EVENT_GAP) gst_event_parse_gap(ev, &it.pts, &it.duration);
    if (it.event == GST_EVENT_CAPS) {
      GstCaps* caps;
      gst_event_parse_caps(ev, &caps);
      gchar* s = gst_caps_to_string(caps);
      it.caps = s;
      g_free(s);
      GstAudioInfo ai;
      if (gst_audio_info_from_caps(&ai, caps)) {
        std::lock_guard<std::mutex> lk(self->m_);
        self->format_ = GST_AUDIO_INFO_FORMAT(&ai);
      }
    }
  } else {
    return GST_PAD_PROBE_OK;
  }
  std::lock_guard<std::mutex> lk(self->m_);
  self->items_.push_back(std::move(it));
  self->cv_.notify_all();
  return GST_PAD_PROBE_OK;
}

bool Recorder::wait_eos(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(m_);
  return cv_.wait_for(lk, timeout, [&] {
    for (const Item& it : items_)
      if (it.event == GST_EVENT_EOS) return true;
    return false;
  });
}

bool Recorder::wait_buffers(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(m_);
  return cv_.wait_for(lk, timeout, [&] {
    size_t k = 0;
    for (const Item& it : items_) k += it.is_buffer;
    return k >= n;
  });
}

std::vector<Item> Recorder::items() {
  std::lock_guard<std::mutex> lk(m_);
  return items_;
}

std::vector<Item> Recorder::buffers() {
  std::vector<Item> out;
  for (Item& it : items())
    if (it.is_buffer) out.push_back(std::move(it));
  return out;
}

std::vector<float> Recorder::all_samples() {
  std::vector<float> out;
  for (const Item& it : buffers()) out.insert(out.end(), it.samples.begin(), it.samples.end());
  return out;
}

void Recorder::clear() {
  std::lock_guard<std::mutex> lk(m_);
  items_.clear();
}

std::vector<GstStructure*> pop_element_messages(GstBus* bus, const char* name) {
  std::vector<GstStructure*> out, keep_order;
  std::vector<GstMessage*> others;
  while (GstMessage* msg = gst_bus_pop(bus)) {
    const GstStructure* s = gst_message_get_structure(msg);
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT && s && gst_structure_has_name(s, name)) {
      out.push_back(gst_structure_copy(s));
      gst_message_unref(msg);
    } else {
      others.push_back(msg);
    }
  }
  for (GstMessage* m : others) gst_bus_post(bus, m);  // put the rest back, in order
  return out;
}

GstMessage* pop_message(GstBus* bus, GstMessageType type) { return gst_bus_pop_filtered(bus, type); }

void free_structures(std::vector<GstStructure*>& v) {
  for (GstStructure* s : v) gst_structure_free(s);
  v.clear();
}

int run_command(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  output->clear();
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

GstBuffer* text_buffer(const std::string& text, GstClockTime pts, GstClockTime duration) {
  GstBuffer* buf = gst_buffer_new_memdup(text.data(), text.size());
  GST_BUFFER_PTS(buf) = pts;
  GST_BUFFER_DURATION(buf) = duration;
  return buf;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
  return d;
}

void watch_element(GstHarness* h, GstElement* element, GstBus*& bus, Recorder*& rec) {
  bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  GstPad* pad = gst_element_get_static_pad(element, "src");
  rec = new Recorder(pad);
  gst_object_unref(pad);
}

void release_harness(GstHarness*& h, Recorder*& rec, GstElement*& element, GstBus*& bus) {
  if (h) gst_harness_teardown(h);
  h = nullptr;
  delete rec;
  rec = nullptr;
  if (element) gst_object_unref(element);
  element = nullptr;
  if (bus) {
    gst_bus_set_flushing(bus, TRUE);
    gst_object_unref(bus);
  }
  bus = nullptr;
}

}  // namespace voxcpm::gsttest

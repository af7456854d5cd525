#include "voxcpmaudio.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gstvoxcpm {

GstCaps* make_audio_caps(int rate) {
  GstCaps* caps = gst_caps_from_string("audio/x-raw, format=(string){ F32LE, S16LE }, layout=(string)interleaved, "
                                       "channels=(int)1, rate=(int)[ 1, 2147483647 ]");
  if (rate > 0) gst_caps_set_simple(caps, "rate", G_TYPE_INT, rate, NULL);
  return caps;
}

GstBuffer* make_audio_buffer(const float* samples, size_t count, GstAudioFormat format, guint64 index, int rate,
                             GstClockTime base) {
  const bool s16 = format == GST_AUDIO_FORMAT_S16LE;
  GstBuffer* buf = gst_buffer_new_allocate(nullptr, count * (s16 ? 2 : 4), nullptr);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  if (s16) {
    auto* out = reinterpret_cast<gint16*>(map.data);
    for (size_t i = 0; i < count; ++i) {
      const float c = std::min(1.0f, std::max(-1.0f, samples[i]));
      out[i] = GINT16_TO_LE(static_cast<gint16>(std::lrint(c * 32767.0f)));
    }
  } else {
    std::memcpy(map.data, samples, count * 4);  // little-endian hosts only (checked in meson)
  }
  gst_buffer_unmap(buf, &map);
  const GstClockTime pts = sample_time(index, rate);
  GST_BUFFER_PTS(buf) = base + pts;
  GST_BUFFER_DURATION(buf) = sample_time(index + count, rate) - pts;
  GST_BUFFER_OFFSET(buf) = index;
  GST_BUFFER_OFFSET_END(buf) = index + count;
  return buf;
}

void post_synthesized_audio(GstElement* element, const UtteranceReport& r, int rate) {
  const double generated_s = rate > 0 ? static_cast<double>(r.samples_generated) / rate : 0.0;
  GstStructure* s = gst_structure_new(
      "voxcpm/synthesized-audio", "text", G_TYPE_STRING, r.text.c_str(), "pts", G_TYPE_UINT64, r.pts,
      "input-duration", G_TYPE_UINT64, r.input_duration, "audio-duration", G_TYPE_UINT64,
      rate > 0 ? gst_util_uint64_scale_int(r.samples_pushed, GST_SECOND, rate) : 0, "generated-duration",
      G_TYPE_UINT64, rate > 0 ? gst_util_uint64_scale_int(r.samples_generated, GST_SECOND, rate) : 0,
      "first-chunk-latency", G_TYPE_UINT64, r.first_chunk_latency, "rtf", G_TYPE_DOUBLE,
      generated_s > 0 ? r.compute_seconds / generated_s : 0.0, "chunks", G_TYPE_UINT, r.chunks, "seed", G_TYPE_UINT64,
      static_cast<guint64>(r.seed), "clipped", G_TYPE_BOOLEAN, r.clipped ? TRUE : FALSE, "late-samples", G_TYPE_UINT64,
      r.samples_late, NULL);
  gst_element_post_message(element, gst_message_new_element(GST_OBJECT(element), s));
}

}  // namespace gstvoxcpm

// Raw-audio plumbing both elements share: caps for the model rate, sample-exact buffers, and the
// per-utterance `voxcpm/synthesized-audio` element message.
#pragma once

#include <gst/audio/audio.h>
#include <gst/gst.h>

#include <cstdint>
#include <string>

namespace gstvoxcpm {

// audio/x-raw, format={F32LE,S16LE}, layout=interleaved, channels=1, rate=`rate` (0: any rate,
// what the pads offer before a model is loaded).
GstCaps* make_audio_caps(int rate);

// Time of sample `index` on the absolute sample grid (as audiotestsrc: no drift accumulates).
inline GstClockTime sample_time(guint64 index, int rate) { return gst_util_uint64_scale_int(index, GST_SECOND, rate); }
// The sample index nearest to `t`.
inline guint64 time_to_sample(GstClockTime t, int rate) { return gst_util_uint64_scale_int_round(t, rate, GST_SECOND); }

// `count` float samples in [-1, 1] as a buffer in `format` (F32LE, or S16LE rounded and clipped like
// voxcpm::write_wav), starting at sample `index`: PTS = base + sample_time(index), DURATION = next
// PTS − PTS, OFFSET/OFFSET_END = index, index + count.
GstBuffer* make_audio_buffer(const float* samples, size_t count, GstAudioFormat format, guint64 index, int rate,
                             GstClockTime base);

// What one utterance produced, posted as the element message `voxcpm/synthesized-audio`.
struct UtteranceReport {
  std::string text;
  GstClockTime pts = GST_CLOCK_TIME_NONE;             // of the first sample pushed (or where it would have been)
  GstClockTime input_duration = GST_CLOCK_TIME_NONE;  // the text buffer's duration, if any
  guint64 samples_pushed = 0, samples_generated = 0, samples_late = 0;
  GstClockTime first_chunk_latency = GST_CLOCK_TIME_NONE;  // wall time from start to first chunk
  double compute_seconds = 0;                            // wall time spent synthesizing
  guint chunks = 0;
  guint64 seed = 0;
  bool clipped = false;
};
void post_synthesized_audio(GstElement* element, const UtteranceReport& report, int rate);

}  // namespace gstvoxcpm

/**
 * SECTION:element-voxcpmtts
 * @title: voxcpmtts
 *
 * Speaks each text buffer with a VoxCPM model. `chain()` only queues the text; a task on the
 * source pad synthesizes one utterance after the other and pushes every chunk (one generated
 * patch: 80 ms for VoxCPM-0.5B, 160 ms for VoxCPM1.5/2) as soon as it is decoded. Serialized
 * events travel through the same queue, so CAPS/SEGMENT/GAP/EOS keep their place between texts.
 *
 * Timestamps: an utterance starts at its buffer's PTS (or, without one, where the previous output
 * ended) snapped to the sample grid; its samples are stamped from the absolute sample index
 * (PTS = index·1 s/rate, OFFSET/OFFSET_END in samples). Silence between utterances is announced
 * with GAP events. `overflow` decides what happens when speech outlasts the buffer's duration.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=subs.srt ! subparse ! voxcpmtts model-path=/models/VoxCPM1.5 overflow=shift ! audioconvert ! wavenc ! filesink location=speech.wav
 * gst-launch-1.0 fdsrc ! text/x-raw,format=utf8 ! voxcpmtts model-path=/models/VoxCPM1.5 ! audioconvert ! autoaudiosink
 * ]|
 */
#include "gstvoxcpmtts.h"

#include <gst/audio/audio.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "voxcpm/error.h"
#include "voxcpmaudio.h"
#include "voxcpmsettings.h"
#include "voxcpmtext.h"

GST_DEBUG_CATEGORY_STATIC(gst_voxcpm_tts_debug);
#define GST_CAT_DEFAULT gst_voxcpm_tts_debug

using gstvoxcpm::sample_time;
using gstvoxcpm::time_to_sample;

enum { PROP_LATENCY = gstvoxcpm::kFirstElementProp, PROP_OVERFLOW };

constexpr guint kDefaultLatencyMs = 2000;
constexpr GstVoxcpmOverflow kDefaultOverflow = GST_VOXCPM_OVERFLOW_CLIP;

namespace {

struct DrainWait {
  GstQuery* query = nullptr;
  bool done = false, result = false;
};

// One entry of the queue between the sink pad and the source-pad task.
struct Item {
  enum class Kind { Text, Event, Drain } kind = Kind::Text;
  std::string text;
  GstClockTime pts = GST_CLOCK_TIME_NONE, duration = GST_CLOCK_TIME_NONE;
  GstEvent* event = nullptr;
  std::shared_ptr<DrainWait> drain;
};

}  // namespace

struct GstVoxcpmTtsPrivate {
  gstvoxcpm::SharedState shared;

  // Guards everything up to `overflow`; `cond` signals queue changes, flushing and drains.
  std::mutex lock;
  std::condition_variable cond;
  std::deque<Item> queue;
  bool flushing = true;
  GstFlowReturn srcresult = GST_FLOW_FLUSHING;
  gstvoxcpm::Utterance* current = nullptr;  // running synthesis, cancelled by FLUSH_START
  guint latency_ms = kDefaultLatencyMs;
  GstVoxcpmOverflow overflow = kDefaultOverflow;

  // Sink streaming thread only.
  bool markup = false;

  // Source task only (or while it is stopped).
  GstSegment segment;
  bool have_segment = false;
  guint64 position = 0;  // sample index where the pushed output (audio or GAP) ends
  bool have_position = false;
  bool need_discont = true;
  bool negotiated = false;
  GstAudioFormat format = GST_AUDIO_FORMAT_F32LE;
  int rate = 0;
  bool live_known = false, live = false;
  GstClockTime upstream_min = 0;
};

struct _GstVoxcpmTts {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;
  GstVoxcpmTtsPrivate* priv;
};

G_DEFINE_TYPE(GstVoxcpmTts, gst_voxcpm_tts, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(voxcpmtts, "voxcpmtts", GST_RANK_NONE, GST_TYPE_VOXCPM_TTS);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format=(string){ utf8, pango-markup }"));

// ---------------------------------------------------------------------------------------------
// Queue

static void clear_queue_locked(GstVoxcpmTtsPrivate* p) {
  for (Item& it : p->queue) {
    if (it.event) gst_event_unref(it.event);
    if (it.drain) it.drain->done = true;  // never run: the waiter answers FALSE
  }
  p->queue.clear();
  p->cond.notify_all();
}

// Answers every queued DRAIN with FALSE (the task stopped on a flow error) and drops it.
static void fail_drains_locked(GstVoxcpmTtsPrivate* p) {
  for (auto it = p->queue.begin(); it != p->queue.end();) {
    if (it->kind != Item::Kind::Drain) {
      ++it;
      continue;
    }
    it->drain->done = true;
    it = p->queue.erase(it);
  }
  p->cond.notify_all();
}

static Item event_item(GstEvent* event) {
  Item it;
  it.kind = Item::Kind::Event;
  it.event = event;
  return it;
}

static bool enqueue(GstVoxcpmTts* self, Item item) {
  GstVoxcpmTtsPrivate* p = self->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  if (p->flushing) {
    if (item.event) gst_event_unref(item.event);
    return false;
  }
  p->queue.push_back(std::move(item));
  p->cond.notify_all();
  return true;
}

// Stops the running utterance and drops everything queued (FLUSH_START, deactivation).
static void set_flushing(GstVoxcpmTts* self) {
  GstVoxcpmTtsPrivate* p = self->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  p->flushing = true;
  p->srcresult = GST_FLOW_FLUSHING;
  if (p->current) p->current->cancel();
  clear_queue_locked(p);
}

// Task state for a fresh stream (start, after a flush).
static void reset_stream_state(GstVoxcpmTts* self) {
  GstVoxcpmTtsPrivate* p = self->priv;
  gst_segment_init(&p->segment, GST_FORMAT_TIME);
  p->have_segment = false;
  p->position = 0;
  p->have_position = false;
  p->need_discont = true;
  p->live_known = false;
}

// ---------------------------------------------------------------------------------------------
// Source-pad task

static GstFlowReturn negotiate(GstVoxcpmTts* self) {
  GstVoxcpmTtsPrivate* p = self->priv;
  const int rate = p->shared.rate();
  if (rate <= 0) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("No model loaded"), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  GstCaps* ours = gstvoxcpm::make_audio_caps(rate);
  GstCaps* caps = gst_pad_peer_query_caps(self->srcpad, ours);
  gst_caps_unref(ours);
  if (!caps || gst_caps_is_empty(caps)) {
    if (caps) gst_caps_unref(caps);
    GST_WARNING_OBJECT(self, "downstream accepts neither F32LE nor S16LE mono at %d Hz", rate);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  caps = gst_caps_fixate(caps);
  GstAudioInfo info;
  if (!gst_audio_info_from_caps(&info, caps)) {
    gst_caps_unref(caps);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  GST_DEBUG_OBJECT(self, "output caps %" GST_PTR_FORMAT, caps);
  gst_pad_check_reconfigure(self->srcpad);  // clears the flag: these caps answer it
  gst_pad_push_event(self->srcpad, gst_event_new_caps(caps));  // sticky even if not linked yet
  gst_caps_unref(caps);
  p->format = GST_AUDIO_INFO_FORMAT(&info);
  p->rate = rate;
  p->negotiated = true;
  return GST_FLOW_OK;
}

// Caps and a segment downstream before any data.
static GstFlowReturn ensure_started(GstVoxcpmTts* self) {
  GstVoxcpmTtsPrivate* p = self->priv;
  if (!p->negotiated || gst_pad_check_reconfigure(self->srcpad)) {
    GstFlowReturn r = negotiate(self);
    if (r != GST_FLOW_OK) return r;
  }
  if (!p->have_segment) {
    gst_segment_init(&p->segment, GST_FORMAT_TIME);
    p->have_segment = true;
    p->have_position = true;
    p->position = 0;
    gst_pad_push_event(self->srcpad, gst_event_new_segment(&p->segment));
  }
  return GST_FLOW_OK;
}

// Announces silence up to sample `end` (from the current output position).
static void push_gap_until(GstVoxcpmTts* self, guint64 end) {
  GstVoxcpmTtsPrivate* p = self->priv;
  if (!p->have_position || end <= p->position) return;
  const GstClockTime t0 = sample_time(p->position, p->rate), t1 = sample_time(end, p->rate);
  GST_LOG_OBJECT(self, "gap %" GST_TIME_FORMAT " - %" GST_TIME_FORMAT, GST_TIME_ARGS(t0), GST_TIME_ARGS(t1));
  gst_pad_push_event(self->srcpad, gst_event_new_gap(t0, t1 - t0));
  p->position = end;
}

static void query_upstream_latency(GstVoxcpmTts* self) {
  GstVoxcpmTtsPrivate* p = self->priv;
  GstQuery* q = gst_query_new_latency();
  p->live = false;
  p->upstream_min = 0;
  if (gst_pad_peer_query(self->sinkpad, q)) {
    gboolean live = FALSE;
    GstClockTime min = 0, max = GST_CLOCK_TIME_NONE;
    gst_query_parse_latency(q, &live, &min, &max);
    p->live = live;
    p->upstream_min = GST_CLOCK_TIME_IS_VALID(min) ? min : 0;
  }
  gst_query_unref(q);
  p->live_known = true;
}

// Running time before which output is too late to be played (live upstream, PLAYING), else NONE.
static GstClockTime late_threshold(GstVoxcpmTts* self, guint latency_ms) {
  GstVoxcpmTtsPrivate* p = self->priv;
  if (!p->live) return GST_CLOCK_TIME_NONE;
  GST_OBJECT_LOCK(self);
  const bool playing = GST_STATE(self) == GST_STATE_PLAYING;
  GstClock* clock = GST_ELEMENT_CLOCK(self) ? GST_CLOCK(gst_object_ref(GST_ELEMENT_CLOCK(self))) : nullptr;
  const GstClockTime base = GST_ELEMENT_CAST(self)->base_time;
  GST_OBJECT_UNLOCK(self);
  if (!clock) return GST_CLOCK_TIME_NONE;
  const GstClockTime now = gst_clock_get_time(clock);
  gst_object_unref(clock);
  if (!playing || now < base) return GST_CLOCK_TIME_NONE;
  const GstClockTime budget = p->upstream_min + latency_ms * GST_MSECOND;
  const GstClockTime running = now - base;
  return running > budget ? running - budget : GST_CLOCK_TIME_NONE;
}

static GstFlowReturn synthesize(GstVoxcpmTts* self, const Item& item) {
  GstVoxcpmTtsPrivate* p = self->priv;
  GstFlowReturn ret = ensure_started(self);
  if (ret != GST_FLOW_OK) return ret;
  const int rate = p->rate;
  GstVoxcpmOverflow overflow;
  guint latency_ms;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    overflow = p->overflow;
    latency_ms = p->latency_ms;
  }
  if (!p->live_known) query_upstream_latency(self);

  // Where the utterance starts, and (clip) where it must end, on the sample grid.
  const bool timed = GST_CLOCK_TIME_IS_VALID(item.pts);
  guint64 s = timed ? time_to_sample(item.pts, rate)
                    : (p->have_position ? p->position : time_to_sample(p->segment.start, rate));
  if (overflow == GST_VOXCPM_OVERFLOW_SHIFT && p->have_position && s < p->position) s = p->position;
  guint64 limit = G_MAXUINT64;
  if (overflow == GST_VOXCPM_OVERFLOW_CLIP && timed && GST_CLOCK_TIME_IS_VALID(item.duration)) {
    const guint64 end = time_to_sample(item.pts + item.duration, rate);
    limit = end > s ? end - s : 0;
  }
  push_gap_until(self, s);
  if (p->have_position && s < p->position) p->need_discont = true;  // overlap: timestamps go back

  gstvoxcpm::UtteranceReport report;
  report.text = item.text;
  report.pts = sample_time(s, rate);
  report.input_duration = item.duration;
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();

  std::unique_ptr<gstvoxcpm::Utterance> utt;
  try {
    utt = p->shared.start_utterance(item.text);
  } catch (const std::exception& e) {
    GST_ELEMENT_WARNING(self, STREAM, FAILED, ("Could not synthesize a text buffer; skipping it"),
                        ("'%s': %s", gstvoxcpm::excerpt(item.text).c_str(), e.what()));
    if (timed && GST_CLOCK_TIME_IS_VALID(item.duration))  // its cue passes in silence
      push_gap_until(self, time_to_sample(item.pts + item.duration, rate));
    return GST_FLOW_OK;
  }
  report.seed = utt->seed();
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->flushing) return GST_FLOW_FLUSHING;
    p->current = utt.get();
  }
  // Unregisters before `utt` is destroyed (declared after it, so destroyed first).
  struct Unregister {
    GstVoxcpmTtsPrivate* p;
    ~Unregister() {
      std::lock_guard<std::mutex> lk(p->lock);
      p->current = nullptr;
    }
  } unregister{p};

  std::vector<float> samples;
  guint64 emitted = 0;  // samples of this utterance placed on the timeline (pushed or dropped late)
  bool warned_late = false, finished = false;
  while (emitted < limit) {
    const auto t0 = clock::now();
    bool more;
    try {
      more = utt->next(&samples);
    } catch (const voxcpm::Cancelled&) {
      GST_DEBUG_OBJECT(self, "utterance cancelled by a flush");
      return GST_FLOW_FLUSHING;
    } catch (const std::exception& e) {
      GST_ELEMENT_ERROR(self, STREAM, FAILED, ("Speech synthesis failed"),
                        ("'%s': %s", gstvoxcpm::excerpt(item.text).c_str(), e.what()));
      return GST_FLOW_ERROR;
    }
    const auto t1 = clock::now();
    report.compute_seconds += std::chrono::duration<double>(t1 - t0).count();
    if (!more) {
      finished = true;
      break;
    }
    if (report.chunks++ == 0)
      report.first_chunk_latency = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t_start).count();
    report.samples_generated += samples.size();

    size_t first = 0, count = samples.size();
    if (count > limit - emitted) count = static_cast<size_t>(limit - emitted);  // clip
    // Live: samples whose deadline passed are dropped (time still advances) and reported.
    const GstClockTime threshold = late_threshold(self, latency_ms);
    if (GST_CLOCK_TIME_IS_VALID(threshold) && count > 0) {
      const GstClockTime rt = gst_segment_to_running_time(&p->segment, GST_FORMAT_TIME, sample_time(s, rate));
      if (GST_CLOCK_TIME_IS_VALID(rt) && rt < threshold) {
        const guint64 late = std::min<guint64>(count, gst_util_uint64_scale_int_ceil(threshold - rt, rate, GST_SECOND));
        GstMessage* qos = gst_message_new_qos(GST_OBJECT(self), TRUE, rt, GST_CLOCK_TIME_NONE, sample_time(s, rate),
                                              sample_time(s + late, rate) - sample_time(s, rate));
        gst_message_set_qos_values(qos, static_cast<gint64>(threshold - rt), 1.0, 1000000);
        gst_message_set_qos_stats(qos, GST_FORMAT_DEFAULT, report.samples_pushed, report.samples_late + late);
        gst_element_post_message(GST_ELEMENT(self), qos);
        if (!warned_late) {
          GST_ELEMENT_WARNING(self, CORE, CLOCK, ("Speech synthesis is too late; dropping audio"),
                              ("%" G_GUINT64_FORMAT " samples late by %" GST_TIME_FORMAT " (latency %u ms)", late,
                               GST_TIME_ARGS(threshold - rt), latency_ms));
          warned_late = true;
        }
        report.samples_late += late;
        first = static_cast<size_t>(late);
        s += late;
        emitted += late;
        count -= static_cast<size_t>(late);
        p->position = s;
        p->have_position = true;
        p->need_discont = true;
      }
    }
    if (count > 0) {
      if (gst_pad_check_reconfigure(self->srcpad) && (ret = negotiate(self)) != GST_FLOW_OK) return ret;
      GstBuffer* buf = gstvoxcpm::make_audio_buffer(samples.data() + first, count, p->format, s, rate, 0);
      if (p->need_discont) {
        GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
        p->need_discont = false;
      }
      s += count;
      emitted += count;
      report.samples_pushed += count;
      p->position = s;
      p->have_position = true;
      ret = gst_pad_push(self->srcpad, buf);
      if (ret != GST_FLOW_OK) return ret;
    }
  }
  if (!finished) report.clipped = true;  // stopped at the cue's end with speech still coming
  gstvoxcpm::post_synthesized_audio(GST_ELEMENT(self), report, rate);
  return GST_FLOW_OK;
}

static GstFlowReturn handle_event(GstVoxcpmTts* self, GstEvent* event) {
  GstVoxcpmTtsPrivate* p = self->priv;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_STREAM_START:
      gst_pad_push_event(self->srcpad, event);
      return GST_FLOW_OK;
    case GST_EVENT_CAPS:  // the text caps: answer with ours
      gst_event_unref(event);
      return negotiate(self);
    case GST_EVENT_SEGMENT: {
      GstFlowReturn r = GST_FLOW_OK;
      if (!p->negotiated) r = negotiate(self);
      gst_event_copy_segment(event, &p->segment);
      p->have_segment = true;
      if (!p->rate) p->rate = p->shared.rate();
      p->position = p->rate ? time_to_sample(p->segment.start, p->rate) : 0;
      p->have_position = p->rate > 0;
      p->need_discont = true;
      p->live_known = false;
      gst_pad_push_event(self->srcpad, event);
      return r;
    }
    case GST_EVENT_GAP: {
      GstFlowReturn r = ensure_started(self);
      if (r != GST_FLOW_OK) {
        gst_event_unref(event);
        return r;
      }
      GstClockTime ts, dur;
      gst_event_parse_gap(event, &ts, &dur);
      gst_event_unref(event);
      if (!GST_CLOCK_TIME_IS_VALID(ts)) return GST_FLOW_OK;
      // Only the part beyond what we already output (speech may have run into it).
      push_gap_until(self, time_to_sample(GST_CLOCK_TIME_IS_VALID(dur) ? ts + dur : ts, p->rate));
      return GST_FLOW_OK;
    }
    case GST_EVENT_EOS:
      if (!p->negotiated) negotiate(self);  // muxers want caps even for an empty stream
      gst_pad_push_event(self->srcpad, event);
      return GST_FLOW_OK;
    default:
      gst_pad_push_event(self->srcpad, event);
      return GST_FLOW_OK;
  }
}

static void tts_loop(GstVoxcpmTts* self) {
  GstVoxcpmTtsPrivate* p = self->priv;
  Item item;
  {
    std::unique_lock<std::mutex> lk(p->lock);
    p->cond.wait(lk, [p] { return p->flushing || !p->queue.empty(); });
    if (p->flushing) {
      lk.unlock();
      gst_pad_pause_task(self->srcpad);
      return;
    }
    item = std::move(p->queue.front());
    p->queue.pop_front();
  }
  GstFlowReturn ret = GST_FLOW_OK;
  switch (item.kind) {
    case Item::Kind::Text: ret = synthesize(self, item); break;
    case Item::Kind::Event: ret = handle_event(self, item.event); break;
    case Item::Kind::Drain: {
      {
        std::lock_guard<std::mutex> lk(p->lock);
        if (item.drain->done) break;  // already answered FALSE: its query is gone
      }
      const bool result = gst_pad_peer_query(self->srcpad, item.drain->query);
      std::lock_guard<std::mutex> lk(p->lock);
      item.drain->result = result;
      item.drain->done = true;
      p->cond.notify_all();
      break;
    }
  }
  if (ret == GST_FLOW_OK) return;

  GST_DEBUG_OBJECT(self, "pausing task: %s", gst_flow_get_name(ret));
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (!p->flushing) {
      p->srcresult = ret;  // upstream's next chain() returns it
      fail_drains_locked(p);  // nothing will be spoken until a flush: do not keep upstream waiting
    }
  }
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) {
    if (ret != GST_FLOW_ERROR) GST_ELEMENT_FLOW_ERROR(self, ret);  // ERROR was posted where it arose
    gst_pad_push_event(self->srcpad, gst_event_new_eos());
  }
  gst_pad_pause_task(self->srcpad);
}

// ---------------------------------------------------------------------------------------------
// Pads

static GstFlowReturn sink_chain(GstPad*, GstObject* parent, GstBuffer* buf) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(parent);
  GstVoxcpmTtsPrivate* p = self->priv;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    if (p->srcresult != GST_FLOW_OK) {
      const GstFlowReturn r = p->srcresult;
      gst_buffer_unref(buf);
      return r;
    }
  }
  Item item;
  item.kind = Item::Kind::Text;
  item.pts = GST_BUFFER_PTS_IS_VALID(buf) ? GST_BUFFER_PTS(buf) : GST_BUFFER_DTS(buf);
  item.duration = GST_BUFFER_DURATION(buf);
  GstMapInfo map;
  if (!gst_buffer_map(buf, &map, GST_MAP_READ)) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("Could not map a text buffer"), (nullptr));
    return GST_FLOW_ERROR;
  }
  std::string problem;
  const bool ok = gstvoxcpm::clean_text(reinterpret_cast<const char*>(map.data), map.size, p->markup, &item.text,
                                        &problem);
  gst_buffer_unmap(buf, &map);
  gst_buffer_unref(buf);
  if (!ok)  // one bad buffer should not stop a live caption stream: warn, drop it, say nothing
    GST_ELEMENT_WARNING(self, STREAM, DECODE, ("Dropping a text buffer that is not valid UTF-8 text or too long"),
                        ("%s", problem.c_str()));
  if (item.text.empty()) {  // nothing to say: keep the timeline moving
    if (GST_CLOCK_TIME_IS_VALID(item.pts))
      enqueue(self, event_item(gst_event_new_gap(item.pts, item.duration)));
    return GST_FLOW_OK;
  }
  GST_LOG_OBJECT(self, "queueing '%s' at %" GST_TIME_FORMAT, gstvoxcpm::excerpt(item.text).c_str(),
                 GST_TIME_ARGS(item.pts));
  return enqueue(self, std::move(item)) ? GST_FLOW_OK : GST_FLOW_FLUSHING;
}

static GstFlowReturn flow_of(gboolean ok) { return ok ? GST_FLOW_OK : GST_FLOW_ERROR; }

// A flow result rather than a boolean (like queue's): while the task is stopped (flushing, or the
// source pad already deactivated on the way to READY), a refused sticky event must reach upstream
// as FLUSHING. A plain event function's FALSE reads as ERROR there, and a source pushing a new
// SEGMENT with its next buffer would stop the pipeline with "Internal data stream error".
static GstFlowReturn queue_event(GstVoxcpmTts* self, GstEvent* event) {
  return enqueue(self, event_item(event)) ? GST_FLOW_OK : GST_FLOW_FLUSHING;
}

static GstFlowReturn sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(parent);
  GstVoxcpmTtsPrivate* p = self->priv;
  GST_LOG_OBJECT(pad, "event %" GST_PTR_FORMAT, event);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_FLUSH_START: {
      set_flushing(self);
      const gboolean ret = gst_pad_push_event(self->srcpad, event);
      gst_pad_pause_task(self->srcpad);  // returns once the running utterance noticed the cancel
      return flow_of(ret);
    }
    case GST_EVENT_FLUSH_STOP: {
      const gboolean ret = gst_pad_push_event(self->srcpad, event);
      // A seek's FLUSH_STOP may arrive after a change to READY deactivated the source pad (pads
      // deactivate source first): restarting the task then would leave it running in READY. The
      // pad's mode goes to NONE before src_activate_mode() takes `lock` to stop the task, so
      // checking and starting under `lock` cannot miss a deactivation.
      std::lock_guard<std::mutex> lk(p->lock);
      if (!gst_pad_is_active(self->srcpad)) return flow_of(ret);
      reset_stream_state(self);  // the task is paused: its state is ours to reset
      p->flushing = false;
      p->srcresult = GST_FLOW_OK;
      gst_pad_start_task(self->srcpad, reinterpret_cast<GstTaskFunction>(tts_loop), self, nullptr);
      return flow_of(ret);
    }
    case GST_EVENT_CAPS: {
      GstCaps* caps;
      gst_event_parse_caps(event, &caps);
      const GstStructure* s = gst_caps_get_structure(caps, 0);
      const char* format = s ? gst_structure_get_string(s, "format") : nullptr;
      p->markup = format && !g_strcmp0(format, "pango-markup");
      return queue_event(self, event);
    }
    case GST_EVENT_SEGMENT: {
      const GstSegment* seg;
      gst_event_parse_segment(event, &seg);
      if (seg->format != GST_FORMAT_TIME) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Only TIME segments are supported, got %s",
                          gst_format_get_name(seg->format)), (nullptr));
        gst_event_unref(event);
        return GST_FLOW_ERROR;
      }
      return queue_event(self, event);
    }
    default:
      if (GST_EVENT_IS_SERIALIZED(event)) return queue_event(self, event);
      return flow_of(gst_pad_event_default(pad, parent, event));
  }
}

static gboolean sink_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(parent);
  GstVoxcpmTtsPrivate* p = self->priv;
  if (GST_QUERY_TYPE(query) != GST_QUERY_DRAIN) return gst_pad_query_default(pad, parent, query);
  // DRAIN: answered once everything queued before it has been spoken.
  Item item;
  item.kind = Item::Kind::Drain;
  item.drain = std::make_shared<DrainWait>();
  item.drain->query = query;
  std::shared_ptr<DrainWait> wait = item.drain;
  std::unique_lock<std::mutex> lk(p->lock);
  // A task stopped by a flow error (downstream EOS, not linked...) would never answer it.
  if (p->flushing || p->srcresult != GST_FLOW_OK) return FALSE;
  p->queue.push_back(std::move(item));
  p->cond.notify_all();
  // Only `done` ends the wait: the task may still be using `query` (a flush or a flow error marks
  // queued drains done).
  p->cond.wait(lk, [&] { return wait->done; });
  return wait->result;
}

static gboolean src_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(parent);
  GstVoxcpmTtsPrivate* p = self->priv;
  switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_LATENCY: {
      // Live upstream: we add `latency` (the time allowed for synthesis). Answered in PAUSED too.
      GstQuery* peer = gst_query_new_latency();
      const gboolean ok = gst_pad_peer_query(self->sinkpad, peer);
      if (ok) {
        gboolean live;
        GstClockTime min, max;
        gst_query_parse_latency(peer, &live, &min, &max);
        if (live) {
          guint latency_ms;
          {
            std::lock_guard<std::mutex> lk(p->lock);
            latency_ms = p->latency_ms;
          }
          min += latency_ms * GST_MSECOND;
          if (GST_CLOCK_TIME_IS_VALID(max)) max += latency_ms * GST_MSECOND;
        }
        GST_DEBUG_OBJECT(self, "latency: live %d, min %" GST_TIME_FORMAT ", max %" GST_TIME_FORMAT, live,
                         GST_TIME_ARGS(min), GST_TIME_ARGS(max));
        gst_query_set_latency(query, live, min, max);
      }
      gst_query_unref(peer);
      return ok;
    }
    case GST_QUERY_CAPS: {
      // Any rate until the model is loaded (READY), then exactly the model's rate.
      GstCaps* filter;
      gst_query_parse_caps(query, &filter);
      GstCaps* caps = gstvoxcpm::make_audio_caps(p->shared.rate());
      if (filter) {
        GstCaps* tmp = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref(caps);
        caps = tmp;
      }
      gst_query_set_caps_result(query, caps);
      gst_caps_unref(caps);
      return TRUE;
    }
    default:
      return gst_pad_query_default(pad, parent, query);
  }
}

static gboolean src_activate_mode(GstPad* pad, GstObject* parent, GstPadMode mode, gboolean active) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(parent);
  GstVoxcpmTtsPrivate* p = self->priv;
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  if (active) {
    reset_stream_state(self);
    p->negotiated = false;
    {
      std::lock_guard<std::mutex> lk(p->lock);
      p->flushing = false;
      p->srcresult = GST_FLOW_OK;
    }
    return gst_pad_start_task(pad, reinterpret_cast<GstTaskFunction>(tts_loop), self, nullptr);
  }
  set_flushing(self);
  return gst_pad_stop_task(pad);
}

// ---------------------------------------------------------------------------------------------
// GObject / GstElement

static void gst_voxcpm_tts_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(object);
  GstVoxcpmTtsPrivate* p = self->priv;
  if (p->shared.set_property(GST_ELEMENT(self), prop_id, value, pspec)) return;
  std::lock_guard<std::mutex> lk(p->lock);
  switch (prop_id) {
    case PROP_LATENCY: p->latency_ms = g_value_get_uint(value); break;
    case PROP_OVERFLOW: p->overflow = static_cast<GstVoxcpmOverflow>(g_value_get_enum(value)); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

static void gst_voxcpm_tts_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(object);
  GstVoxcpmTtsPrivate* p = self->priv;
  if (p->shared.get_property(prop_id, value)) return;
  std::lock_guard<std::mutex> lk(p->lock);
  switch (prop_id) {
    case PROP_LATENCY: g_value_set_uint(value, p->latency_ms); break;
    case PROP_OVERFLOW: g_value_set_enum(value, p->overflow); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

static GstStateChangeReturn gst_voxcpm_tts_change_state(GstElement* element, GstStateChange transition) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(element);
  GstVoxcpmTtsPrivate* p = self->priv;
  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!p->shared.load_model(element)) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!p->shared.prepare(element)) return GST_STATE_CHANGE_FAILURE;
      p->negotiated = false;
      break;
    default: break;
  }
  const GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_voxcpm_tts_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL) p->shared.release_model();
  return ret;
}

static void gst_voxcpm_tts_init(GstVoxcpmTts* self) {
  self->priv = new GstVoxcpmTtsPrivate();
  gst_segment_init(&self->priv->segment, GST_FORMAT_TIME);

  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, sink_chain);
  gst_pad_set_event_full_function(self->sinkpad, sink_event);
  gst_pad_set_query_function(self->sinkpad, sink_query);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);

  GstPadTemplate* templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self), "src");
  self->srcpad = gst_pad_new_from_template(templ, "src");
  gst_pad_set_activatemode_function(self->srcpad, src_activate_mode);
  gst_pad_set_query_function(self->srcpad, src_query);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}

static void gst_voxcpm_tts_finalize(GObject* object) {
  GstVoxcpmTts* self = GST_VOXCPM_TTS(object);
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    clear_queue_locked(self->priv);
  }
  delete self->priv;
  G_OBJECT_CLASS(gst_voxcpm_tts_parent_class)->finalize(object);
}

static void gst_voxcpm_tts_class_init(GstVoxcpmTtsClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GST_DEBUG_CATEGORY_INIT(gst_voxcpm_tts_debug, "voxcpmtts", 0, "VoxCPM text to speech");

  gobject_class->set_property = gst_voxcpm_tts_set_property;
  gobject_class->get_property = gst_voxcpm_tts_get_property;
  gobject_class->finalize = gst_voxcpm_tts_finalize;
  gstvoxcpm::SharedState::install_properties(gobject_class);
  g_object_class_install_property(
      gobject_class, PROP_LATENCY,
      g_param_spec_uint("latency", "Latency",
                        "Time allowed for synthesis in live pipelines (ms), added to the upstream latency; output "
                        "later than that is dropped",
                        0, G_MAXUINT / 1000, kDefaultLatencyMs,
                        static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                 GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_OVERFLOW,
      g_param_spec_enum("overflow", "Overflow",
                        "What to do when the speech outlasts the text buffer's duration", GST_TYPE_VOXCPM_OVERFLOW,
                        kDefaultOverflow,
                        static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                 GST_PARAM_MUTABLE_PLAYING)));
  gst_type_mark_as_plugin_api(GST_TYPE_VOXCPM_OVERFLOW, static_cast<GstPluginAPIFlags>(0));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  GstCaps* src_caps = gstvoxcpm::make_audio_caps(0);
  gst_element_class_add_pad_template(element_class, gst_pad_template_new("src", GST_PAD_SRC, GST_PAD_ALWAYS, src_caps));
  gst_caps_unref(src_caps);
  gst_element_class_set_static_metadata(element_class, "VoxCPM text to speech", "Converter/Text/Audio",
                                        "Speaks each text buffer with a VoxCPM model, streaming audio as it is "
                                        "generated",
                                        "gst-voxcpm");
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_voxcpm_tts_change_state);
}

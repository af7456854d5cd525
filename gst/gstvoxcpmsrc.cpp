/**
 * SECTION:element-voxcpmsrc
 * @title: voxcpmsrc
 *
 * A source that speaks its `text` property (or the text of a `voxcpm://TEXT` URI, percent-escaped)
 * and then every text queued with the `speak` action signal, streaming each chunk as soon as it is
 * decoded. Timestamps run from a sample counter: PTS = timestamp-offset + index·1 s/rate.
 *
 * Not live (default): starts at 0 and ends with EOS once everything queued has been spoken.
 * Live (`is-live=true`): stamps in running time from the moment it starts playing, never ends on
 * its own, and fills the time between utterances with silence buffers flagged GAP (one chunk
 * each); LATENCY = one chunk + `latency` (the compute budget for a chunk).
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 voxcpmsrc model-path=/models/VoxCPM1.5 text="Hello world." ! audioconvert ! wavenc ! filesink location=hello.wav
 * VOXCPM_MODEL=/models/VoxCPM1.5 gst-launch-1.0 voxcpm://Hello%20world. ! audioconvert ! autoaudiosink
 * ]|
 */
#include "gstvoxcpmsrc.h"

#include <gst/audio/audio.h>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "voxcpm/error.h"
#include "voxcpmaudio.h"
#include "voxcpmsettings.h"
#include "voxcpmtext.h"

GST_DEBUG_CATEGORY_STATIC(gst_voxcpm_src_debug);
#define GST_CAT_DEFAULT gst_voxcpm_src_debug

using gstvoxcpm::sample_time;

enum { PROP_TEXT = gstvoxcpm::kFirstElementProp, PROP_IS_LIVE, PROP_TIMESTAMP_OFFSET, PROP_LATENCY };

constexpr guint kDefaultLatencyMs = 1000;

struct GstVoxcpmSrcPrivate {
  gstvoxcpm::SharedState shared;

  // Guards the fields up to `latency_ms`.
  std::mutex lock;
  std::deque<std::string> pending;  // texts to speak, in order
  bool flushing = false;
  gstvoxcpm::Utterance* current = nullptr;  // running synthesis, cancelled by unlock()
  std::string text;
  gint64 timestamp_offset = 0;
  guint latency_ms = kDefaultLatencyMs;

  // Streaming thread only.
  std::unique_ptr<gstvoxcpm::Utterance> active;
  gstvoxcpm::UtteranceReport report;
  std::chrono::steady_clock::time_point started;
  guint64 base = 0, n = 0;  // sample index of the first sample, samples produced since
  bool base_set = false;
  GstAudioFormat format = GST_AUDIO_FORMAT_F32LE;
  int rate = 0;
};

struct _GstVoxcpmSrc {
  GstPushSrc parent;
  GstVoxcpmSrcPrivate* priv;
};

static void uri_handler_init(gpointer g_iface, gpointer iface_data);

G_DEFINE_TYPE_WITH_CODE(GstVoxcpmSrc, gst_voxcpm_src, GST_TYPE_PUSH_SRC,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_URI_HANDLER, uri_handler_init));
GST_ELEMENT_REGISTER_DEFINE(voxcpmsrc, "voxcpmsrc", GST_RANK_NONE, GST_TYPE_VOXCPM_SRC);

// ---------------------------------------------------------------------------------------------
// Speaking

static void drop_active(GstVoxcpmSrc* self) {
  GstVoxcpmSrcPrivate* p = self->priv;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->current = nullptr;
  }
  p->active.reset();
}

static void queue_text(GstVoxcpmSrc* self, const gchar* text) {
  std::string clean, problem;
  if (!text || !gstvoxcpm::clean_text(text, strlen(text), false, &clean, &problem)) {
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS, ("Ignoring text that is not valid UTF-8 text or too long"),
                        ("%s", problem.c_str()));
    return;
  }
  if (clean.empty()) return;
  GstVoxcpmSrcPrivate* p = self->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  p->pending.push_back(clean);
}

static GstFlowReturn src_create(GstPushSrc* psrc, GstBuffer** outbuf) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(psrc);
  GstVoxcpmSrcPrivate* p = self->priv;
  const bool live = gst_base_src_is_live(GST_BASE_SRC(psrc));
  gint64 offset;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    offset = p->timestamp_offset;
  }
  if (!p->base_set) {
    // Live: stamp in running time from where we start (late joiners are not behind the clock).
    p->base = 0;
    if (live) {
      GstClock* clock = gst_element_get_clock(GST_ELEMENT(self));
      if (clock) {
        const GstClockTime now = gst_clock_get_time(clock), base = gst_element_get_base_time(GST_ELEMENT(self));
        if (now > base) p->base = gstvoxcpm::time_to_sample(now - base, p->rate);
        gst_object_unref(clock);
      }
    }
    p->base_set = true;
  }
  using clock = std::chrono::steady_clock;
  for (;;) {
    if (!p->active) {
      std::string text;
      {
        std::lock_guard<std::mutex> lk(p->lock);
        if (p->flushing) return GST_FLOW_FLUSHING;
        if (!p->pending.empty()) {
          text = std::move(p->pending.front());
          p->pending.pop_front();
        }
      }
      if (text.empty()) {
        if (!live) return GST_FLOW_EOS;
        // Live and idle: one chunk of silence, flagged GAP, keeps the clock-driven stream going.
        const std::vector<float> zeros(static_cast<size_t>(p->shared.info().samples_per_chunk), 0.0f);
        GstBuffer* buf = gstvoxcpm::make_audio_buffer(zeros.data(), zeros.size(), p->format, p->base + p->n, p->rate,
                                                      offset);
        GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_GAP);
        p->n += zeros.size();
        *outbuf = buf;
        return GST_FLOW_OK;
      }
      try {
        p->active = p->shared.start_utterance(text);
      } catch (const std::exception& e) {
        GST_ELEMENT_WARNING(self, STREAM, FAILED, ("Could not synthesize a text; skipping it"),
                            ("'%s': %s", gstvoxcpm::excerpt(text).c_str(), e.what()));
        continue;
      }
      {
        std::lock_guard<std::mutex> lk(p->lock);
        if (p->flushing) {
          p->active.reset();
          return GST_FLOW_FLUSHING;
        }
        p->current = p->active.get();
      }
      p->report = gstvoxcpm::UtteranceReport{};
      p->report.text = text;
      p->report.pts = offset + sample_time(p->base + p->n, p->rate);
      p->report.seed = p->active->seed();
      p->started = clock::now();
    }
    std::vector<float> samples;
    bool more;
    const auto t0 = clock::now();
    try {
      more = p->active->next(&samples);
    } catch (const voxcpm::Cancelled&) {
      GST_DEBUG_OBJECT(self, "utterance interrupted by unlock");
      drop_active(self);
      return GST_FLOW_FLUSHING;
    } catch (const std::exception& e) {
      const std::string text = p->report.text;
      drop_active(self);
      GST_ELEMENT_ERROR(self, STREAM, FAILED, ("Speech synthesis failed"),
                        ("'%s': %s", gstvoxcpm::excerpt(text).c_str(), e.what()));
      return GST_FLOW_ERROR;
    }
    const auto t1 = clock::now();
    p->report.compute_seconds += std::chrono::duration<double>(t1 - t0).count();
    if (!more) {
      gstvoxcpm::post_synthesized_audio(GST_ELEMENT(self), p->report, p->rate);
      drop_active(self);
      continue;
    }
    if (p->report.chunks++ == 0)
      p->report.first_chunk_latency = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - p->started).count();
    p->report.samples_generated += samples.size();
    p->report.samples_pushed += samples.size();
    if (samples.empty()) continue;
    *outbuf = gstvoxcpm::make_audio_buffer(samples.data(), samples.size(), p->format, p->base + p->n, p->rate, offset);
    p->n += samples.size();
    return GST_FLOW_OK;
  }
}

// ---------------------------------------------------------------------------------------------
// GstBaseSrc

static GstCaps* src_get_caps(GstBaseSrc* bsrc, GstCaps* filter) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(bsrc);
  GstCaps* caps = gstvoxcpm::make_audio_caps(self->priv->shared.rate());  // any rate before READY
  if (filter) {
    GstCaps* tmp = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = tmp;
  }
  return caps;
}

static gboolean src_set_caps(GstBaseSrc* bsrc, GstCaps* caps) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(bsrc);
  GstAudioInfo info;
  if (!gst_audio_info_from_caps(&info, caps) || GST_AUDIO_INFO_RATE(&info) != self->priv->shared.rate()) return FALSE;
  self->priv->format = GST_AUDIO_INFO_FORMAT(&info);
  self->priv->rate = GST_AUDIO_INFO_RATE(&info);
  return TRUE;
}

static gboolean src_start(GstBaseSrc* bsrc) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(bsrc);
  GstVoxcpmSrcPrivate* p = self->priv;
  p->rate = p->shared.rate();
  p->n = 0;
  p->base_set = false;
  std::string text;
  {
    std::lock_guard<std::mutex> lk(p->lock);
    p->flushing = false;
    text = p->text;
  }
  std::string clean, problem;
  if (!gstvoxcpm::clean_text(text.data(), text.size(), false, &clean, &problem)) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("The text property is not valid UTF-8 text or too long"),
                      ("%s", problem.c_str()));
    return FALSE;
  }
  std::lock_guard<std::mutex> lk(p->lock);
  if (!clean.empty()) p->pending.push_front(clean);  // before whatever `speak` queued already
  return TRUE;
}

static gboolean src_stop(GstBaseSrc* bsrc) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(bsrc);
  drop_active(self);
  std::lock_guard<std::mutex> lk(self->priv->lock);
  self->priv->pending.clear();
  return TRUE;
}

static gboolean src_unlock(GstBaseSrc* bsrc) {
  GstVoxcpmSrcPrivate* p = GST_VOXCPM_SRC(bsrc)->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  p->flushing = true;
  if (p->current) p->current->cancel();  // create() returns within one model step
  return TRUE;
}

static gboolean src_unlock_stop(GstBaseSrc* bsrc) {
  GstVoxcpmSrcPrivate* p = GST_VOXCPM_SRC(bsrc)->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  p->flushing = false;
  return TRUE;
}

static void src_get_times(GstBaseSrc* bsrc, GstBuffer* buffer, GstClockTime* start, GstClockTime* end) {
  *start = *end = GST_CLOCK_TIME_NONE;
  // Live: a buffer is released once its span has elapsed, as a capture source would deliver it.
  if (gst_base_src_is_live(bsrc) && GST_BUFFER_PTS_IS_VALID(buffer)) {
    *start = GST_BUFFER_PTS(buffer);
    if (GST_BUFFER_DURATION_IS_VALID(buffer)) *start += GST_BUFFER_DURATION(buffer);
  }
}

static gboolean src_query(GstBaseSrc* bsrc, GstQuery* query) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(bsrc);
  GstVoxcpmSrcPrivate* p = self->priv;
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY && gst_base_src_is_live(bsrc)) {
    const gstvoxcpm::ModelInfo info = p->shared.info();
    if (info.sample_rate <= 0) return FALSE;
    guint latency_ms;
    {
      std::lock_guard<std::mutex> lk(p->lock);
      latency_ms = p->latency_ms;
    }
    // A chunk is released when its span has elapsed, and may need `latency` to compute.
    const GstClockTime min =
        gst_util_uint64_scale_int(info.samples_per_chunk, GST_SECOND, static_cast<int>(info.sample_rate)) +
        latency_ms * GST_MSECOND;
    gst_query_set_latency(query, TRUE, min, GST_CLOCK_TIME_NONE);  // nothing is lost by waiting
    return TRUE;
  }
  return GST_BASE_SRC_CLASS(gst_voxcpm_src_parent_class)->query(bsrc, query);
}

// ---------------------------------------------------------------------------------------------
// URI handler: voxcpm://TEXT

static GstURIType uri_get_type(GType) { return GST_URI_SRC; }

static const gchar* const* uri_get_protocols(GType) {
  static const gchar* protocols[] = {"voxcpm", nullptr};
  return protocols;
}

static gchar* uri_get_uri(GstURIHandler* handler) {
  GstVoxcpmSrcPrivate* p = GST_VOXCPM_SRC(handler)->priv;
  std::lock_guard<std::mutex> lk(p->lock);
  gchar* escaped = g_uri_escape_string(p->text.c_str(), nullptr, FALSE);
  gchar* uri = g_strdup_printf("voxcpm://%s", escaped);
  g_free(escaped);
  return uri;
}

static gboolean uri_set_uri(GstURIHandler* handler, const gchar* uri, GError** error) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(handler);
  if (!uri || g_ascii_strncasecmp(uri, "voxcpm://", 9) != 0) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_UNSUPPORTED_PROTOCOL, "not a voxcpm:// URI: %s", uri);
    return FALSE;
  }
  GST_OBJECT_LOCK(self);
  const bool started = GST_STATE(self) > GST_STATE_READY;
  GST_OBJECT_UNLOCK(self);
  if (started) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_BAD_STATE, "the URI can only change in NULL or READY");
    return FALSE;
  }
  gchar* text = g_uri_unescape_string(uri + 9, nullptr);
  if (!text || !g_utf8_validate(text, -1, nullptr)) {
    g_free(text);
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "the text of %s is not valid UTF-8", uri);
    return FALSE;
  }
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    self->priv->text = text;
  }
  g_free(text);
  g_object_notify(G_OBJECT(self), "text");
  return TRUE;
}

static void uri_handler_init(gpointer g_iface, gpointer) {
  auto* iface = static_cast<GstURIHandlerInterface*>(g_iface);
  iface->get_type = uri_get_type;
  iface->get_protocols = uri_get_protocols;
  iface->get_uri = uri_get_uri;
  iface->set_uri = uri_set_uri;
}

// ---------------------------------------------------------------------------------------------
// GObject / GstElement

static void gst_voxcpm_src_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(object);
  GstVoxcpmSrcPrivate* p = self->priv;
  if (p->shared.set_property(GST_ELEMENT(self), prop_id, value, pspec)) return;
  switch (prop_id) {
    case PROP_TEXT: {
      const gchar* t = g_value_get_string(value);
      if (t && (!g_utf8_validate(t, -1, nullptr) || strlen(t) > gstvoxcpm::kMaxTextBytes)) {
        GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS, ("Ignoring text that is not valid UTF-8 text or too long"),
                            ("%zu bytes (at most %zu)", strlen(t), gstvoxcpm::kMaxTextBytes));
        break;
      }
      std::lock_guard<std::mutex> lk(p->lock);
      p->text = t ? t : "";
      break;
    }
    case PROP_IS_LIVE: gst_base_src_set_live(GST_BASE_SRC(self), g_value_get_boolean(value)); break;
    case PROP_TIMESTAMP_OFFSET: {
      std::lock_guard<std::mutex> lk(p->lock);
      p->timestamp_offset = g_value_get_int64(value);
      break;
    }
    case PROP_LATENCY: {
      std::lock_guard<std::mutex> lk(p->lock);
      p->latency_ms = g_value_get_uint(value);
      break;
    }
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

static void gst_voxcpm_src_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  GstVoxcpmSrc* self = GST_VOXCPM_SRC(object);
  GstVoxcpmSrcPrivate* p = self->priv;
  if (p->shared.get_property(prop_id, value)) return;
  switch (prop_id) {
    case PROP_TEXT: {
      std::lock_guard<std::mutex> lk(p->lock);
      g_value_set_string(value, p->text.c_str());
      break;
    }
    case PROP_IS_LIVE: g_value_set_boolean(value, gst_base_src_is_live(GST_BASE_SRC(self))); break;
    case PROP_TIMESTAMP_OFFSET: {
      std::lock_guard<std::mutex> lk(p->lock);
      g_value_set_int64(value, p->timestamp_offset);
      break;
    }
    case PROP_LATENCY: {
      std::lock_guard<std::mutex> lk(p->lock);
      g_value_set_uint(value, p->latency_ms);
      break;
    }
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

static GstStateChangeReturn gst_voxcpm_src_change_state(GstElement* element, GstStateChange transition) {
  GstVoxcpmSrcPrivate* p = GST_VOXCPM_SRC(element)->priv;
  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!p->shared.load_model(element)) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!p->shared.prepare(element)) return GST_STATE_CHANGE_FAILURE;
      break;
    default: break;
  }
  const GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_voxcpm_src_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL) p->shared.release_model();
  return ret;
}

static void gst_voxcpm_src_init(GstVoxcpmSrc* self) {
  self->priv = new GstVoxcpmSrcPrivate();
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
  gst_base_src_set_live(GST_BASE_SRC(self), FALSE);
}

static void gst_voxcpm_src_finalize(GObject* object) {
  delete GST_VOXCPM_SRC(object)->priv;
  G_OBJECT_CLASS(gst_voxcpm_src_parent_class)->finalize(object);
}

static void gst_voxcpm_src_class_init(GstVoxcpmSrcClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstBaseSrcClass* basesrc_class = GST_BASE_SRC_CLASS(klass);
  GstPushSrcClass* pushsrc_class = GST_PUSH_SRC_CLASS(klass);
  GST_DEBUG_CATEGORY_INIT(gst_voxcpm_src_debug, "voxcpmsrc", 0, "VoxCPM speech source");

  gobject_class->set_property = gst_voxcpm_src_set_property;
  gobject_class->get_property = gst_voxcpm_src_get_property;
  gobject_class->finalize = gst_voxcpm_src_finalize;
  gstvoxcpm::SharedState::install_properties(gobject_class);
  g_object_class_install_property(
      gobject_class, PROP_TEXT,
      g_param_spec_string("text", "Text", "Text spoken first after starting (then what `speak` queued)", "",
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                   GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean("is-live", "Is live",
                           "Act as a live source: running-time stamps, clock sync, silence between utterances", FALSE,
                           static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                    GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_TIMESTAMP_OFFSET,
      g_param_spec_int64("timestamp-offset", "Timestamp offset", "Added to every timestamp (ns)", 0, G_MAXINT64, 0,
                         static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                  GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_LATENCY,
      g_param_spec_uint("latency", "Latency", "Live mode: compute time allowed per chunk (ms), reported in LATENCY",
                        0, G_MAXUINT / 1000, kDefaultLatencyMs,
                        static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                 GST_PARAM_MUTABLE_READY)));

  /**
   * GstVoxcpmSrc::speak:
   * @src: the voxcpmsrc
   * @text: UTF-8 text
   *
   * Queues @text to be spoken after what is already queued.
   */
  g_signal_new_class_handler("speak", G_TYPE_FROM_CLASS(klass),
                             static_cast<GSignalFlags>(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION), G_CALLBACK(queue_text),
                             nullptr, nullptr, nullptr, G_TYPE_NONE, 1, G_TYPE_STRING);

  GstCaps* caps = gstvoxcpm::make_audio_caps(0);
  gst_element_class_add_pad_template(element_class, gst_pad_template_new("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref(caps);
  gst_element_class_set_static_metadata(element_class, "VoxCPM speech source", "Source/Audio",
                                        "Speaks text with a VoxCPM model", "gst-voxcpm");
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_voxcpm_src_change_state);
  basesrc_class->get_caps = GST_DEBUG_FUNCPTR(src_get_caps);
  basesrc_class->set_caps = GST_DEBUG_FUNCPTR(src_set_caps);
  basesrc_class->start = GST_DEBUG_FUNCPTR(src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(src_stop);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR(src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR(src_unlock_stop);
  basesrc_class->get_times = GST_DEBUG_FUNCPTR(src_get_times);
  basesrc_class->query = GST_DEBUG_FUNCPTR(src_query);
  pushsrc_class->create = GST_DEBUG_FUNCPTR(src_create);
}

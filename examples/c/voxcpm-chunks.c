/* Minimal embedding of the voxcpm plugin: voxcpmsrc ! appsink, printing every audio chunk as it
 * arrives (PTS, duration, samples) and the per-utterance `voxcpm/synthesized-audio` message.
 *
 *   voxcpm-chunks MODEL_DIR "Text to speak." [EXTRA_PROPERTIES...]
 *   e.g. voxcpm-chunks /models/VoxCPM1.5 "Hello world." max-len=200 seed=7
 *
 * Every extra argument is a `name=value` property of voxcpmsrc (parsed by gst_parse_launch).
 * Output lines (one per chunk, flushed immediately so a reader sees them live):
 *   chunk 0 pts=0 duration=160000000 samples=7056 rate=44100
 *   utterance text="Hello world." audio-duration=... first-chunk-latency=... rtf=...
 *   eos chunks=N total-duration=NS
 */
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <stdio.h>
#include <string.h>

/* Single quotes for gst_parse_launch: the model path and the text may hold spaces. */
static gchar *quoted(const gchar *s) {
  gchar *escaped = g_strescape(s, NULL);
  gchar *q = g_strdup_printf("\"%s\"", escaped);
  g_free(escaped);
  return q;
}

/* Messages from the bus: errors end the program, the element message is printed. */
static gboolean report_message(GstMessage *msg) {
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
      GError *err = NULL;
      gchar *dbg = NULL;
      gst_message_parse_error(msg, &err, &dbg);
      fprintf(stderr, "error: %s\n  %s\n", err->message, dbg ? dbg : "");
      g_clear_error(&err);
      g_free(dbg);
      return FALSE;
    }
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure(msg);
      if (s && gst_structure_has_name(s, "voxcpm/synthesized-audio")) {
        guint64 audio = 0, latency = 0;
        gdouble rtf = 0;
        gst_structure_get_uint64(s, "audio-duration", &audio);
        gst_structure_get_uint64(s, "first-chunk-latency", &latency);
        gst_structure_get_double(s, "rtf", &rtf);
        printf("utterance text=\"%s\" audio-duration=%" G_GUINT64_FORMAT " first-chunk-latency=%" G_GUINT64_FORMAT
               " rtf=%.3f\n",
               gst_structure_get_string(s, "text"), audio, latency, rtf);
        fflush(stdout);
      }
      return TRUE;
    }
    default:
      return TRUE;
  }
}

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL_DIR TEXT [PROPERTY=VALUE...]\n", argv[0]);
    return 2;
  }
  gchar *model = quoted(argv[1]);
  gchar *text = quoted(argv[2]);
  gchar *extra = g_strjoinv(" ", argv + 3);
  gchar *desc = g_strdup_printf("voxcpmsrc name=tts model-path=%s text=%s %s ! "
                                "audio/x-raw,format=F32LE ! appsink name=sink sync=false",
                                model, text, extra);
  g_free(model);
  g_free(text);
  g_free(extra);

  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch(desc, &err);
  g_free(desc);
  if (!pipeline || err) {
    fprintf(stderr, "error: cannot build the pipeline: %s\n", err ? err->message : "?");
    g_clear_error(&err);
    return 1;
  }
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  GstBus *bus = gst_element_get_bus(pipeline);
  int status = 0;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    /* e.g. no model at that path: the reason is an ERROR message on the bus. */
    GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    if (msg) {
      report_message(msg);
      gst_message_unref(msg);
    } else {
      fprintf(stderr, "error: the pipeline could not start\n");
    }
    status = 1;
  }

  guint chunks = 0;
  GstClockTime total = 0;
  while (status == 0) {
    /* Poll the bus between samples: errors (e.g. a missing model) arrive there, not on appsink. */
    GstMessage *msg;
    while ((msg = gst_bus_pop(bus)) != NULL) {
      if (!report_message(msg)) status = 1;
      gst_message_unref(msg);
    }
    if (status != 0) break;
    GstSample *sample = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 100 * GST_MSECOND);
    if (!sample) {
      if (gst_app_sink_is_eos(GST_APP_SINK(sink))) break;
      continue;
    }
    GstBuffer *buf = gst_sample_get_buffer(sample);
    gint rate = 0;
    gst_structure_get_int(gst_caps_get_structure(gst_sample_get_caps(sample), 0), "rate", &rate);
    printf("chunk %u pts=%" G_GUINT64_FORMAT " duration=%" G_GUINT64_FORMAT " samples=%" G_GSIZE_FORMAT
           " rate=%d\n",
           chunks, GST_BUFFER_PTS(buf), GST_BUFFER_DURATION(buf), gst_buffer_get_size(buf) / sizeof(float), rate);
    fflush(stdout);
    chunks++;
    total += GST_BUFFER_DURATION(buf);
    gst_sample_unref(sample);
  }
  /* The last utterance message is posted before EOS reaches the sink: drain the bus once more. */
  GstMessage *msg;
  while (status == 0 && (msg = gst_bus_pop(bus)) != NULL) {
    if (!report_message(msg)) status = 1;
    gst_message_unref(msg);
  }
  if (status == 0) printf("eos chunks=%u total-duration=%" G_GUINT64_FORMAT "\n", chunks, total);

  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  return status;
}

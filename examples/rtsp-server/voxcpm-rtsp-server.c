/* voxcpm-rtsp-server: broadcasts VoxCPM speech over RTSP (gst-rtsp-server) at the model's native
 * rate, as uncompressed L16 (RTP payload type 96, `L16/<rate>/1`), so every RTSP client plays it.
 *
 *   voxcpm-rtsp-server --model DIR [--port 8554] [--mount /tts] [--address 127.0.0.1]
 *                      [--property NAME=VALUE ...] (--text T | --text-file F | lines on stdin)
 *
 * One shared live media per mount: every client hears the same stream. `--text`/`--text-file` is
 * the `text` property of the live voxcpmsrc, spoken each time the media starts (the first client
 * arrives after all others left). Lines read from stdin are spoken with the `speak` action signal
 * as soon as they are typed, to whoever listens (held until a client connects if none does).
 * Between utterances the source streams silence, so clients stay connected.
 * `--property` sets any other voxcpmsrc property (seed=7, max-len=200, device=cuda, ...).
 */
#include <gio/gio.h>
#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  GMainLoop *loop;
  GstElement *tts;   /* voxcpmsrc of the current media, NULL while nobody listens */
  GQueue pending;    /* stdin lines typed while nobody listened */
} Server;

static void speak(Server *s, const gchar *line) {
  if (s->tts) {
    g_signal_emit_by_name(s->tts, "speak", line);
    printf("speaking: %s\n", line);
  } else {
    g_queue_push_tail(&s->pending, g_strdup(line));
    printf("queued (no client yet): %s\n", line);
  }
  fflush(stdout);
}

static void media_unprepared(GstRTSPMedia *media, Server *s) {
  (void)media;
  g_clear_object(&s->tts);
}

/* A new media (first client): remember its source and speak what was typed meanwhile. */
static void media_configure(GstRTSPMediaFactory *factory, GstRTSPMedia *media, Server *s) {
  (void)factory;
  GstElement *bin = gst_rtsp_media_get_element(media);
  g_clear_object(&s->tts);
  s->tts = gst_bin_get_by_name(GST_BIN(bin), "tts");
  gst_object_unref(bin);
  g_signal_connect(media, "unprepared", G_CALLBACK(media_unprepared), s);
  gchar *line;
  while ((line = g_queue_pop_head(&s->pending)) != NULL) {
    speak(s, line);
    g_free(line);
  }
}

static gboolean on_stdin(GIOChannel *ch, GIOCondition cond, gpointer data) {
  Server *s = data;
  (void)cond;
  gchar *line = NULL;
  gsize term = 0;
  GIOStatus st = g_io_channel_read_line(ch, &line, NULL, &term, NULL);
  if (st == G_IO_STATUS_NORMAL && line) {
    line[term] = '\0';
    g_strstrip(line);
    if (*line) speak(s, line);
  }
  g_free(line);
  /* End of input leaves the server running; it stops on SIGINT/SIGTERM. */
  return st == G_IO_STATUS_NORMAL || st == G_IO_STATUS_AGAIN;
}

static gboolean on_signal(gpointer data) {
  g_main_loop_quit(((Server *)data)->loop);
  return G_SOURCE_REMOVE;
}

/* Double-quoted and escaped for gst_parse_launch (paths and text may hold spaces and quotes). */
static gchar *quoted(const gchar *v) {
  gchar *e = g_strescape(v, NULL);
  gchar *q = g_strdup_printf("\"%s\"", e);
  g_free(e);
  return q;
}

int main(int argc, char **argv) {
  gchar *model = NULL, *mount = g_strdup("/tts"), *address = g_strdup("127.0.0.1"), *text = NULL, *text_file = NULL;
  gchar **props = NULL;
  gint port = 8554;
  GOptionEntry entries[] = {
      {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model, "VoxCPM model directory (required)", "DIR"},
      {"port", 'p', 0, G_OPTION_ARG_INT, &port, "TCP port (default 8554)", "PORT"},
      {"mount", 0, 0, G_OPTION_ARG_STRING, &mount, "mount point (default /tts)", "PATH"},
      {"address", 0, 0, G_OPTION_ARG_STRING, &address, "address to listen on (default 127.0.0.1)", "ADDR"},
      {"text", 't', 0, G_OPTION_ARG_STRING, &text, "text spoken when the stream starts", "T"},
      {"text-file", 'f', 0, G_OPTION_ARG_FILENAME, &text_file, "file whose text is spoken when the stream starts", "F"},
      {"property", 'P', 0, G_OPTION_ARG_STRING_ARRAY, &props, "voxcpmsrc property, repeatable", "NAME=VALUE"},
      {NULL, 0, 0, 0, NULL, NULL, NULL}};
  GOptionContext *ctx = g_option_context_new("- speak text to RTSP clients with VoxCPM");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_add_group(ctx, gst_init_get_option_group());
  GError *err = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
    fprintf(stderr, "voxcpm-rtsp-server: %s\n", err->message);
    return 2;
  }
  g_option_context_free(ctx);
  if (!model || (text && text_file) || port <= 0 || port > 65535 || mount[0] != '/') {
    fprintf(stderr, "usage: voxcpm-rtsp-server --model DIR [--port 8554] [--mount /tts] "
                    "(--text T | --text-file F | stdin lines)\n");
    return 2;
  }
  if (text_file) {
    if (!g_file_get_contents(text_file, &text, NULL, &err)) {
      fprintf(stderr, "voxcpm-rtsp-server: %s\n", err->message);
      return 1;
    }
  }

  /* rtpL16pay carries the model's own rate; audioconvert only turns F32 into big-endian S16. */
  GString *launch = g_string_new("( voxcpmsrc name=tts is-live=true model-path=");
  gchar *q = quoted(model);
  g_string_append(launch, q);
  g_free(q);
  if (text) {
    q = quoted(text);
    g_string_append_printf(launch, " text=%s", q);
    g_free(q);
  }
  for (gchar **p = props; p && *p; p++) g_string_append_printf(launch, " %s", *p);
  g_string_append(launch, " ! audioconvert ! rtpL16pay name=pay0 pt=96 )");

  Server s = {g_main_loop_new(NULL, FALSE), NULL, G_QUEUE_INIT};
  GstRTSPServer *server = gst_rtsp_server_new();
  gst_rtsp_server_set_address(server, address);
  gchar *service = g_strdup_printf("%d", port);
  gst_rtsp_server_set_service(server, service);
  GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new();
  gst_rtsp_media_factory_set_launch(factory, launch->str);
  gst_rtsp_media_factory_set_shared(factory, TRUE);
  g_signal_connect(factory, "media-configure", G_CALLBACK(media_configure), &s);
  GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points(server);
  gst_rtsp_mount_points_add_factory(mounts, mount, factory);
  g_object_unref(mounts);
  if (gst_rtsp_server_attach(server, NULL) == 0) {
    fprintf(stderr, "voxcpm-rtsp-server: cannot listen on %s:%d\n", address, port);
    return 1;
  }

  GIOChannel *in = g_io_channel_unix_new(0);
  g_io_add_watch(in, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, &s);
  g_unix_signal_add(SIGINT, on_signal, &s);
  g_unix_signal_add(SIGTERM, on_signal, &s);
  printf("serving rtsp://%s:%d%s\n", address, port, mount);
  fflush(stdout);
  g_main_loop_run(s.loop);

  printf("stopping\n");
  /* Stop the running media before returning from main: a streaming thread still synthesizing
   * while exit() runs the libraries' static destructors would crash. */
  if (s.tts) {
    GstObject *top = gst_object_ref(GST_OBJECT(s.tts)), *parent;
    while ((parent = gst_object_get_parent(top)) != NULL) {
      gst_object_unref(top);
      top = parent;
    }
    gst_element_set_state(GST_ELEMENT(top), GST_STATE_NULL);
    gst_object_unref(top);
  }
  g_clear_object(&s.tts);
  g_queue_clear_full(&s.pending, g_free);
  g_io_channel_unref(in);
  g_object_unref(server);
  /* A media whose last client just left is unprepared on a pool thread: wait for those tasks too. */
  gst_rtsp_thread_pool_cleanup();
  g_main_loop_unref(s.loop);
  g_string_free(launch, TRUE);
  g_free(service);
  g_free(model);
  g_free(mount);
  g_free(address);
  g_free(text);
  g_free(text_file);
  g_strfreev(props);
  return 0;
}

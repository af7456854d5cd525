// Linked into every gst test binary: with the leaks tracer active (GST_TRACERS=leaks, meson sets it),
// a leaked GstObject or GstMiniObject (buffer, event, caps, message, query, pad, element...) fails
// the run. As gst-check does, GStreamer is shut down after the last test; the tracer then lists what
// is still alive under GST_DEBUG=GST_TRACER:7 (GST_TRACERS='leaks(stack-traces-flags=full)' adds
// where each leaked object was created) and warns once, and that warning is the failure.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>

namespace {

std::atomic<bool> leaks_reported{false};

void watch_log(const gchar* domain, GLogLevelFlags level, const gchar* message, gpointer) {
  if (message && strstr(message, "Leaks detected")) leaks_reported = true;
  g_log_default_handler(domain, level, message, nullptr);
}

bool leaks_tracer_active() {
  GList* tracers = gst_tracing_get_active_tracers();
  bool found = false;
  for (GList* l = tracers; l; l = l->next)
    if (!strcmp(G_OBJECT_TYPE_NAME(l->data), "GstLeaksTracer")) found = true;
  g_list_free_full(tracers, gst_object_unref);  // the tracer must die in gst_deinit() to report
  return found;
}

class LeakCheck : public ::testing::Environment {
 public:
  void TearDown() override {
    if (!gst_is_initialized() || !leaks_tracer_active()) return;
    g_log_set_default_handler(watch_log, nullptr);
    g_log_set_handler("GStreamer", G_LOG_LEVEL_WARNING, watch_log, nullptr);
    gst_deinit();  // the tracer reports objects still alive here
    EXPECT_FALSE(leaks_reported) << "GStreamer objects leaked; rerun with GST_DEBUG=GST_TRACER:7 and "
                                    "GST_TRACERS='leaks(stack-traces-flags=full)' to see which and where from";
  }
};

const ::testing::Environment* const leak_check = ::testing::AddGlobalTestEnvironment(new LeakCheck);

}  // namespace

// The `voxcpm` plugin: registers the elements and nothing else. No torch or CUDA here (nor in
// class_init): gst-inspect and the registry scanner load this plugin.
#include <gst/gst.h>

#include "gstvoxcpmsrc.h"
#include "gstvoxcpmtts.h"

static gboolean plugin_init(GstPlugin* plugin) {
  gboolean ok = FALSE;
  ok |= GST_ELEMENT_REGISTER(voxcpmtts, plugin);
  ok |= GST_ELEMENT_REGISTER(voxcpmsrc, plugin);
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, voxcpm, "VoxCPM text-to-speech (C++/libtorch)", plugin_init,
                  VOXCPM_VERSION, "Apache 2.0", "gst-voxcpm (VoxCPM for GStreamer)",
                  "https://github.com/OpenBMB/VoxCPM")

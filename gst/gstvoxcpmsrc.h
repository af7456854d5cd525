// voxcpmsrc: a source that speaks its `text` property (or voxcpm://TEXT) and whatever the
// `speak` action signal queues.
#pragma once

#include <gst/base/gstpushsrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_VOXCPM_SRC (gst_voxcpm_src_get_type())
G_DECLARE_FINAL_TYPE(GstVoxcpmSrc, gst_voxcpm_src, GST, VOXCPM_SRC, GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE(voxcpmsrc);

G_END_DECLS

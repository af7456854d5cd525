// voxcpmtts: text buffers in, streamed speech out (one utterance per buffer).
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_VOXCPM_TTS (gst_voxcpm_tts_get_type())
G_DECLARE_FINAL_TYPE(GstVoxcpmTts, gst_voxcpm_tts, GST, VOXCPM_TTS, GstElement)

GST_ELEMENT_REGISTER_DECLARE(voxcpmtts);

G_END_DECLS

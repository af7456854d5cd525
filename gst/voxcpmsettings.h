// What voxcpmtts and voxcpmsrc have in common: the synthesis properties (installed, read and
// written here, once for both) and the loaded model those properties select.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <mutex>
#include <string>

#include "voxcpmengine.h"

G_BEGIN_DECLS

// What voxcpmtts does when speech outlasts the text buffer's duration (names/values of awspolly).
typedef enum {
  GST_VOXCPM_OVERFLOW_CLIP = 0,     // drop the samples beyond the buffer's duration
  GST_VOXCPM_OVERFLOW_OVERLAP = 1,  // keep them; the next utterance may overlap
  GST_VOXCPM_OVERFLOW_SHIFT = 2,    // keep them; later utterances are delayed so nothing overlaps
} GstVoxcpmOverflow;
#define GST_TYPE_VOXCPM_OVERFLOW (gst_voxcpm_overflow_get_type())
GType gst_voxcpm_overflow_get_type(void);

typedef enum {
  GST_VOXCPM_DTYPE_AUTO = 0,  // the checkpoint's bfloat16 where the device computes it natively, else float32
  GST_VOXCPM_DTYPE_FLOAT32 = 1,
  GST_VOXCPM_DTYPE_BFLOAT16 = 2,
} GstVoxcpmDtype;
#define GST_TYPE_VOXCPM_DTYPE (gst_voxcpm_dtype_get_type())
GType gst_voxcpm_dtype_get_type(void);

G_END_DECLS

namespace gstvoxcpm {

// Property ids of the shared properties; an element numbers its own from kFirstElementProp.
enum SharedProp : guint {
  PROP_MODEL_PATH = 1,
  PROP_DEVICE,
  PROP_DTYPE,
  PROP_N_THREADS,
  PROP_INFERENCE_TIMESTEPS,
  PROP_CFG_VALUE,
  PROP_SEED,
  PROP_MIN_LEN,
  PROP_MAX_LEN,
  PROP_NORMALIZE,
  PROP_PROMPT_WAV_PATH,
  PROP_PROMPT_TEXT,
  PROP_REFERENCE_WAV_PATH,
  PROP_SAMPLE_RATE,
  PROP_MODEL_INFO,
  kFirstElementProp,
};

// The model + settings half of an element. Thread safe: properties are set from application
// threads while the streaming thread snapshots them per utterance.
class SharedState {
 public:
  static void install_properties(GObjectClass* klass);
  // Both return false for ids that are not shared properties.
  bool set_property(GstElement* element, guint prop_id, const GValue* value, GParamSpec* pspec);
  bool get_property(guint prop_id, GValue* value) const;

  // NULL→READY: loads the selected model (shared through the process-wide cache). READY→PAUSED:
  // reloads if model-path/device/dtype changed in READY and checks the synthesis settings. Both
  // post GST_ELEMENT_ERROR (naming the file) and return false on failure.
  bool load_model(GstElement* element);
  bool prepare(GstElement* element);
  void release_model();  // READY→NULL

  bool has_model() const;
  ModelInfo info() const;
  int rate() const;  // 0 before the model is loaded
  // A synthesis of `text` with the current settings; throws std::exception (bad text/options).
  std::unique_ptr<Utterance> start_utterance(const std::string& text) const;

 private:
  ModelRequest request_locked() const;

  mutable std::mutex mutex_;
  std::string model_path_;
  std::string device_ = "auto";
  GstVoxcpmDtype dtype_ = GST_VOXCPM_DTYPE_AUTO;
  UtteranceOptions opts_;
  std::shared_ptr<const voxcpm::Model> model_;
  ModelRequest loaded_;
  ModelInfo info_;
};

}  // namespace gstvoxcpm

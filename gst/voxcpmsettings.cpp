#include "voxcpmsettings.h"

#include <cstdlib>
#include <cstring>

GST_DEBUG_CATEGORY_STATIC(voxcpm_settings_debug);
#define GST_CAT_DEFAULT voxcpm_settings_debug

GType gst_voxcpm_overflow_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_VOXCPM_OVERFLOW_CLIP, "Clip", "clip"},
      {GST_VOXCPM_OVERFLOW_OVERLAP, "Overlap", "overlap"},
      {GST_VOXCPM_OVERFLOW_SHIFT, "Shift", "shift"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstVoxcpmOverflow", values));
  return type;
}

GType gst_voxcpm_dtype_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_VOXCPM_DTYPE_AUTO, "The checkpoint's bfloat16 where the device computes it natively, else float32", "auto"},
      {GST_VOXCPM_DTYPE_FLOAT32, "float32", "float32"},
      {GST_VOXCPM_DTYPE_BFLOAT16, "bfloat16", "bfloat16"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstVoxcpmDtype", values));
  return type;
}

namespace gstvoxcpm {
namespace {

constexpr GParamFlags kReady =
    static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
constexpr GParamFlags kPlaying =
    static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
constexpr GParamFlags kReadOnly = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
constexpr guint kMaxLen = 1u << 20;

const char* dtype_name(GstVoxcpmDtype d) {
  switch (d) {
    case GST_VOXCPM_DTYPE_FLOAT32: return "float32";
    case GST_VOXCPM_DTYPE_BFLOAT16: return "bfloat16";
    default: return "auto";
  }
}

// auto, cpu, cuda or cuda:N
bool valid_device(const char* d) {
  if (!d) return false;
  if (!strcmp(d, "auto") || !strcmp(d, "cpu") || !strcmp(d, "cuda")) return true;
  if (strncmp(d, "cuda:", 5) != 0 || !d[5] || strlen(d) > 8) return false;
  for (const char* p = d + 5; *p; ++p)
    if (!g_ascii_isdigit(*p)) return false;
  return true;
}

std::string str_or_empty(const GValue* v) {
  const char* s = g_value_get_string(v);
  return s ? s : "";
}

void set_str_or_null(GValue* v, const std::string& s) { g_value_set_string(v, s.empty() ? nullptr : s.c_str()); }

}  // namespace

void SharedState::install_properties(GObjectClass* klass) {
  GST_DEBUG_CATEGORY_INIT(voxcpm_settings_debug, "voxcpmsettings", 0, "VoxCPM shared settings");
  g_object_class_install_property(
      klass, PROP_MODEL_PATH,
      g_param_spec_string("model-path", "Model path",
                          "Directory of a VoxCPM model (config.json, model.safetensors or pytorch_model.bin, "
                          "audiovae.pth, tokenizer.json); unset: $VOXCPM_MODEL",
                          nullptr, kReady));
  g_object_class_install_property(
      klass, PROP_DEVICE,
      g_param_spec_string("device", "Device", "Compute device: auto (CUDA if available), cpu, cuda or cuda:N", "auto",
                          kReady));
  g_object_class_install_property(klass, PROP_DTYPE,
                                  g_param_spec_enum("dtype", "Data type", "Data type of the language-model side",
                                                    GST_TYPE_VOXCPM_DTYPE, GST_VOXCPM_DTYPE_AUTO, kReady));
  g_object_class_install_property(
      klass, PROP_N_THREADS,
      g_param_spec_int("n-threads", "Threads", "CPU threads for synthesis (0: the CPUs the process may use, shared among running utterances)", 0, 1024, 0,
                       kPlaying));
  g_object_class_install_property(
      klass, PROP_INFERENCE_TIMESTEPS,
      g_param_spec_uint("inference-timesteps", "Inference timesteps", "Flow-matching steps per generated patch", 1,
                        1000, 10, kPlaying));
  g_object_class_install_property(
      klass, PROP_CFG_VALUE,
      g_param_spec_double("cfg-value", "CFG value", "Classifier-free guidance value", 0.0, 100.0, 2.0, kPlaying));
  g_object_class_install_property(
      klass, PROP_SEED,
      g_param_spec_int64("seed", "Seed",
                         "Random seed of each utterance (-1: a random one; the same seed and text give the same "
                         "audio)",
                         -1, G_MAXUINT32, -1, kPlaying));
  g_object_class_install_property(
      klass, PROP_MIN_LEN,
      g_param_spec_uint("min-len", "Minimum length", "Patches generated before the stop head may end an utterance", 0,
                        kMaxLen, 2, kPlaying));
  g_object_class_install_property(
      klass, PROP_MAX_LEN,
      g_param_spec_uint("max-len", "Maximum length", "Most patches generated per text segment", 1, kMaxLen, 4096,
                        kPlaying));
  g_object_class_install_property(
      klass, PROP_NORMALIZE,
      g_param_spec_boolean("normalize", "Normalize", "Normalize whitespace in the text as VoxCPM does", TRUE,
                           kPlaying));
  g_object_class_install_property(
      klass, PROP_PROMPT_WAV_PATH,
      g_param_spec_string("prompt-wav-path", "Prompt WAV path",
                          "WAV whose voice the speech continues (with prompt-text, its exact transcript)", nullptr,
                          kPlaying));
  g_object_class_install_property(
      klass, PROP_PROMPT_TEXT,
      g_param_spec_string("prompt-text", "Prompt text", "Transcript of prompt-wav-path", nullptr, kPlaying));
  g_object_class_install_property(
      klass, PROP_REFERENCE_WAV_PATH,
      g_param_spec_string("reference-wav-path", "Reference WAV path", "Isolated voice reference (VoxCPM2 only)",
                          nullptr, kPlaying));
  g_object_class_install_property(
      klass, PROP_SAMPLE_RATE,
      g_param_spec_int("sample-rate", "Sample rate", "Output rate of the loaded model (0 before READY)", 0, G_MAXINT,
                       0, kReadOnly));
  g_object_class_install_property(
      klass, PROP_MODEL_INFO,
      g_param_spec_string("model-info", "Model info", "Version, rate, chunk size, size, device and dtype of the "
                          "loaded model (NULL before READY)", nullptr, kReadOnly));
  gst_type_mark_as_plugin_api(GST_TYPE_VOXCPM_DTYPE, static_cast<GstPluginAPIFlags>(0));
}

bool SharedState::set_property(GstElement* element, guint prop_id, const GValue* value, GParamSpec* pspec) {
  if (prop_id == PROP_MODEL_PATH || prop_id == PROP_DEVICE || prop_id == PROP_DTYPE) {
    // The model is chosen before PAUSED; later changes would be silently ignored, so refuse them.
    GST_OBJECT_LOCK(element);
    const GstState state = GST_STATE(element);
    GST_OBJECT_UNLOCK(element);
    if (state > GST_STATE_READY) {
      GST_ELEMENT_WARNING(element, LIBRARY, SETTINGS, ("The model can only be changed in the NULL or READY state"),
                          ("ignoring the new value of '%s'", g_param_spec_get_name(pspec)));
      return true;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  switch (prop_id) {
    case PROP_MODEL_PATH: model_path_ = str_or_empty(value); return true;
    case PROP_DEVICE: {
      const char* d = g_value_get_string(value);
      if (!valid_device(d)) {
        GST_ELEMENT_WARNING(element, LIBRARY, SETTINGS, ("Invalid device '%s'", d ? d : "(null)"),
                            ("use auto, cpu, cuda or cuda:N; keeping '%s'", device_.c_str()));
        return true;
      }
      device_ = d;
      return true;
    }
    case PROP_DTYPE: dtype_ = static_cast<GstVoxcpmDtype>(g_value_get_enum(value)); return true;
    case PROP_N_THREADS: opts_.n_threads = g_value_get_int(value); return true;
    case PROP_INFERENCE_TIMESTEPS: opts_.inference_timesteps = g_value_get_uint(value); return true;
    case PROP_CFG_VALUE: opts_.cfg_value = g_value_get_double(value); return true;
    case PROP_SEED: opts_.seed = g_value_get_int64(value); return true;
    case PROP_MIN_LEN: opts_.min_len = g_value_get_uint(value); return true;
    case PROP_MAX_LEN: opts_.max_len = g_value_get_uint(value); return true;
    case PROP_NORMALIZE: opts_.normalize = g_value_get_boolean(value); return true;
    case PROP_PROMPT_WAV_PATH: opts_.prompt_wav_path = str_or_empty(value); return true;
    case PROP_PROMPT_TEXT: opts_.prompt_text = str_or_empty(value); return true;
    case PROP_REFERENCE_WAV_PATH: opts_.reference_wav_path = str_or_empty(value); return true;
    default: return false;
  }
}

bool SharedState::get_property(guint prop_id, GValue* value) const {
  std::lock_guard<std::mutex> lock(mutex_);
  switch (prop_id) {
    case PROP_MODEL_PATH: set_str_or_null(value, model_path_); return true;
    case PROP_DEVICE: g_value_set_string(value, device_.c_str()); return true;
    case PROP_DTYPE: g_value_set_enum(value, dtype_); return true;
    case PROP_N_THREADS: g_value_set_int(value, opts_.n_threads); return true;
    case PROP_INFERENCE_TIMESTEPS: g_value_set_uint(value, static_cast<guint>(opts_.inference_timesteps)); return true;
    case PROP_CFG_VALUE: g_value_set_double(value, opts_.cfg_value); return true;
    case PROP_SEED: g_value_set_int64(value, opts_.seed); return true;
    case PROP_MIN_LEN: g_value_set_uint(value, static_cast<guint>(opts_.min_len)); return true;
    case PROP_MAX_LEN: g_value_set_uint(value, static_cast<guint>(opts_.max_len)); return true;
    case PROP_NORMALIZE: g_value_set_boolean(value, opts_.normalize); return true;
    case PROP_PROMPT_WAV_PATH: set_str_or_null(value, opts_.prompt_wav_path); return true;
    case PROP_PROMPT_TEXT: set_str_or_null(value, opts_.prompt_text); return true;
    case PROP_REFERENCE_WAV_PATH: set_str_or_null(value, opts_.reference_wav_path); return true;
    case PROP_SAMPLE_RATE: g_value_set_int(value, model_ ? static_cast<int>(info_.sample_rate) : 0); return true;
    case PROP_MODEL_INFO: g_value_set_string(value, model_ ? info_.describe().c_str() : nullptr); return true;
    default: return false;
  }
}

ModelRequest SharedState::request_locked() const {
  ModelRequest r;
  r.path = model_path_;
  if (r.path.empty()) {
    const char* env = g_getenv("VOXCPM_MODEL");
    if (env) r.path = env;
  }
  r.device = device_;
  r.dtype = dtype_name(dtype_);
  return r;
}

bool SharedState::load_model(GstElement* element) {
  ModelRequest request;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    request = request_locked();
    if (model_ && loaded_ == request) return true;
  }
  GST_INFO_OBJECT(element, "loading model '%s' (device %s, dtype %s)", request.path.c_str(), request.device.c_str(),
                  request.dtype.c_str());
  gst_element_post_message(element, gst_message_new_progress(GST_OBJECT(element), GST_PROGRESS_TYPE_START, "load",
                                                             "Loading the VoxCPM model"));
  ModelInfo info;
  std::shared_ptr<const voxcpm::Model> model;
  try {
    model = gstvoxcpm::load_model(request, &info);
  } catch (const LoadError& e) {
    gst_element_post_message(element, gst_message_new_progress(GST_OBJECT(element), GST_PROGRESS_TYPE_ERROR, "load",
                                                               "Could not load the VoxCPM model"));
    if (request.path.empty())
      GST_ELEMENT_ERROR(element, RESOURCE, NOT_FOUND, ("No VoxCPM model set"), ("%s", e.what()));
    else if (e.not_found)
      GST_ELEMENT_ERROR(element, RESOURCE, NOT_FOUND, ("Could not load the VoxCPM model '%s'", request.path.c_str()),
                        ("%s", e.what()));
    else
      GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS, ("Could not load the VoxCPM model '%s'", request.path.c_str()),
                        ("%s", e.what()));
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    model_ = std::move(model);
    loaded_ = request;
    info_ = info;
  }
  GST_INFO_OBJECT(element, "model: %s", info.describe().c_str());
  gst_element_post_message(element, gst_message_new_progress(GST_OBJECT(element), GST_PROGRESS_TYPE_COMPLETE, "load",
                                                             "Loaded the VoxCPM model"));
  g_object_notify(G_OBJECT(element), "sample-rate");
  g_object_notify(G_OBJECT(element), "model-info");
  return true;
}

bool SharedState::prepare(GstElement* element) {
  if (!load_model(element)) return false;
  UtteranceOptions opts;
  ModelInfo info;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    opts = opts_;
    info = info_;
  }
  const std::string problem = check_options(opts, info);
  if (!problem.empty()) {
    GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS, ("Invalid synthesis settings"), ("%s", problem.c_str()));
    return false;
  }
  return true;
}

void SharedState::release_model() {
  std::lock_guard<std::mutex> lock(mutex_);
  model_.reset();  // the cache frees it once no other element holds it
  loaded_ = ModelRequest{};
  info_ = ModelInfo{};
}

bool SharedState::has_model() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<bool>(model_);
}

ModelInfo SharedState::info() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return info_;
}

int SharedState::rate() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return model_ ? static_cast<int>(info_.sample_rate) : 0;
}

std::unique_ptr<Utterance> SharedState::start_utterance(const std::string& text) const {
  std::shared_ptr<const voxcpm::Model> model;
  UtteranceOptions opts;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    model = model_;
    opts = opts_;
  }
  if (!model) throw std::runtime_error("no model loaded");
  return std::make_unique<Utterance>(std::move(model), text, opts);
}

}  // namespace gstvoxcpm

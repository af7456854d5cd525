// A loaded VoxCPM model directory: config, tokenizer and every module, read-only after load so
// that any number of requests can share one instance across threads.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "voxcpm/audio_vae.h"
#include "voxcpm/cfm.h"
#include "voxcpm/config.h"
#include "voxcpm/layers.h"
#include "voxcpm/locdit.h"
#include "voxcpm/locenc.h"
#include "voxcpm/tokenizer.h"
#include "voxcpm/transformer.h"

namespace voxcpm {

struct LoadOptions {
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N"
  std::string dtype = "auto";  // "auto", "float32", "bfloat16" (and the config's spellings)
};

// The files a model directory must hold, resolved (safetensors preferred, as the official loader).
struct ModelFiles {
  std::string dir, config, lm_weights, vae_weights;
  static ModelFiles locate(const std::string& dir);  // throws Error naming what is missing
};

class Model {
 public:
  static std::shared_ptr<const Model> load(const std::string& dir, const LoadOptions& opts = {});
  // From already read parts (voxcpm-make-model builds one from synthesizing Weights).
  static std::shared_ptr<const Model> create(ModelFiles files, ModelConfig config, const ModuleOptions& opts,
                                             Tokenizer tokenizer, const Weights& lm, const Weights& vae);

  const ModelConfig& config() const { return config_; }
  const ModelFiles& files() const { return files_; }
  const ModuleOptions& options() const { return opts_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  // "VoxCPM-0.5B", "VoxCPM1.5" or "VoxCPM2" (from the config's architecture and patch size).
  std::string version_name() const;
  int64_t sample_rate() const { return audio_vae.out_sample_rate(); }
  int64_t samples_per_patch() const { return config_.patch_size * audio_vae.decode_hop(); }
  // Audio produced per generated patch (one model step): 80 ms (0.5B), 160 ms (1.5, 2).
  double patch_seconds() const { return static_cast<double>(samples_per_patch()) / sample_rate(); }
  int64_t parameter_count() const { return parameter_count_; }

 private:
  Model(ModelFiles files, ModelConfig config, const ModuleOptions& opts, Tokenizer tokenizer, const Weights& lm,
        const Weights& vae);

  ModelFiles files_;
  ModelConfig config_;
  ModuleOptions opts_;
  Tokenizer tokenizer_;
  int64_t parameter_count_ = 0;

 public:
  Transformer base_lm, residual_lm;
  LocEnc feat_encoder;
  LocDiT estimator;
  UnifiedCFM feat_decoder;  // holds a reference to `estimator`: Model is never copied or moved
  ScalarQuantizer fsq;
  StopHead stop;
  Linear enc_to_lm_proj, lm_to_dit_proj, res_to_dit_proj;
  std::optional<Linear> fusion_concat_proj;  // VoxCPM2 only
  AudioVAE audio_vae;

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
};

// The LM-side dtype for a device: "auto" is the checkpoint's bfloat16 where the device computes it
// natively (CUDA; CPUs with AVX512-BF16 or AMX), else float32.
at::ScalarType resolve_dtype(const std::string& requested, const std::string& config_dtype, const at::Device& device);
at::Device resolve_device(const std::string& requested);

}  // namespace voxcpm

// LocEnc (`feat_encoder`, spec §3.3): encodes each latent patch [P, D] into one vector through a
// bidirectional MiniCPM4 encoder whose first token is a learned special ("CLS") token.
#pragma once

#include <ATen/ATen.h>

#include "voxcpm/config.h"
#include "voxcpm/layers.h"
#include "voxcpm/transformer.h"
#include "voxcpm/weights.h"

namespace voxcpm {

class LocEnc {
 public:
  // Loads feat_encoder.{in_proj,special_token,encoder.*}.
  LocEnc(const Weights& w, const ModelConfig& cfg, const ModuleOptions& o);

  // x [B, T, P, D] → [B, T, enc_hidden] (the special token's output of every patch).
  at::Tensor operator()(const at::Tensor& x) const;

  const Transformer& encoder() const { return encoder_; }

 private:
  int64_t patch_size_, feat_dim_, hidden_;
  ModuleOptions opts_;
  Linear in_proj_;
  at::Tensor special_token_;  // [1, 1, 1, enc_hidden]
  Transformer encoder_;
};

}  // namespace voxcpm

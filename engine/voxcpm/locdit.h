// LocDiT (`feat_decoder.estimator`, spec §3.6): the velocity network of the flow-matching
// decoder, a bidirectional MiniCPM4 over [conditioning tokens, prefix patch, noisy patch].
// v1/v1.5: one token mu + time embedding. v2: mu split into 2 tokens, then a time token.
#pragma once

#include <ATen/ATen.h>

#include "voxcpm/config.h"
#include "voxcpm/layers.h"
#include "voxcpm/transformer.h"
#include "voxcpm/weights.h"

namespace voxcpm {

class LocDiT {
 public:
  // Loads feat_decoder.estimator.{in_proj,cond_proj,out_proj,time_mlp,delta_time_mlp,decoder.*}.
  LocDiT(const Weights& w, const ModelConfig& cfg, const ModuleOptions& o);

  // x, cond [N, D, P]; mu [N, mu_dim]; t, dt [N] → velocity [N, D, P].
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& mu, const at::Tensor& t, const at::Tensor& cond,
                        const at::Tensor& dt) const {
    return forward(x, mu, time_embedding(t, dt), cond);
  }
  // The conditioning on the time: time_mlp(sin(t)) + delta_time_mlp(sin(dt)), t, dt [N] → [N, hidden].
  // It depends on the schedule position only, so a sampler may compute it once and reuse it.
  at::Tensor time_embedding(const at::Tensor& t, const at::Tensor& dt) const;
  // The call with the time embedding te [N, hidden] of time_embedding().
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mu, const at::Tensor& te, const at::Tensor& cond) const;

  // Width of mu: dit hidden (v1/v1.5) or 2 × dit hidden (v2).
  int64_t mu_dim() const { return mu_tokens_ * hidden_; }
  const Transformer& decoder() const { return decoder_; }

 private:
  struct TimestepEmbedding {  // linear_2(SiLU(linear_1(.)))
    Linear linear_1, linear_2;
    at::Tensor operator()(const at::Tensor& x) const { return linear_2(at::silu(linear_1(x))); }
  };
  at::Tensor sinusoidal(const at::Tensor& s) const;

  int64_t feat_dim_, hidden_, mu_tokens_;
  ModuleOptions opts_;
  Linear in_proj_, cond_proj_, out_proj_;
  TimestepEmbedding time_mlp_, delta_time_mlp_;
  Transformer decoder_;
};

}  // namespace voxcpm

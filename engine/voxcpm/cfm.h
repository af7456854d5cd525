// UnifiedCFM (`feat_decoder`, spec §3.7): Euler flow-matching sampler with classifier-free
// guidance (CFG-zero*), producing one latent patch per call from the LocDiT velocity network.
#pragma once

#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>

#include "voxcpm/config.h"
#include "voxcpm/layers.h"
#include "voxcpm/locdit.h"

namespace voxcpm {

// Intermediate values of one sampler call, for tests and diagnostics.
struct CfmTrace {
  at::Tensor noise;                        // [B, D, P] the random draw
  at::Tensor t_span;                       // [n+1] the swayed schedule
  std::vector<at::Tensor> x_in, t_in, out;  // per estimator call: [2B, D, P], [2B], [2B, D, P]
};

class UnifiedCFM {
 public:
  // Keeps a reference to `estimator`, which must outlive this object.
  UnifiedCFM(const LocDiT& estimator, const ModelConfig& cfg, const ModuleOptions& o);

  // mu [B, mu_dim], cond [B, D, P] (the previous patch) → patch [B, D, P] in the module dtype.
  // The only random draw is randn({B, D, P}) from `gen` in the module dtype at the start of the
  // call (`gen` must be a generator of the module's device type).
  at::Tensor operator()(const at::Tensor& mu, int64_t n_timesteps, const at::Tensor& cond, double cfg_value,
                        at::Generator& gen) const {
    return sample(mu, n_timesteps, cond, cfg_value, gen, nullptr);
  }
  // Same, recording the intermediate values into `trace` when it is not null.
  at::Tensor sample(const at::Tensor& mu, int64_t n_timesteps, const at::Tensor& cond, double cfg_value,
                    at::Generator& gen, CfmTrace* trace) const;

  // t_span = linspace(1, 0, n+1) swayed by t + (cos(πt/2) − 1 + t), in the module dtype.
  at::Tensor schedule(int64_t n_timesteps) const;

 private:
  // The estimator's time embedding for Euler step `step` of an n-step schedule at `rows` rows:
  // t and dt follow from (n, step) alone, so every patch of every request reuses the first
  // computation (the time MLPs are two memory-bound products per call). Shared across threads.
  at::Tensor time_embedding(int64_t n, int64_t step, const at::Tensor& t, const at::Tensor& dt) const;

  const LocDiT& estimator_;
  int64_t feat_dim_, patch_size_;
  bool mean_mode_;
  ModuleOptions opts_;
  mutable std::mutex time_memo_mutex_;
  mutable std::map<std::tuple<int64_t, int64_t, int64_t>, at::Tensor> time_memo_;  // (n, step, rows) → [rows, H]
};

}  // namespace voxcpm

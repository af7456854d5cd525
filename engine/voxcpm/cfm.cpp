#include "voxcpm/cfm.h"

#include <algorithm>
#include <cmath>

#include "voxcpm/error.h"

namespace voxcpm {
namespace {

constexpr double kSwaySamplingCoef = 1.0;  // official defaults at inference
constexpr double kPi = 3.14159265358979323846;
// Time embeddings kept for schedules of up to this many steps, up to this many in all (a few MB).
constexpr int64_t kTimeMemoMaxSteps = 64;
constexpr size_t kTimeMemoMaxEntries = 512;

}  // namespace

UnifiedCFM::UnifiedCFM(const LocDiT& estimator, const ModelConfig& cfg, const ModuleOptions& o)
    : estimator_(estimator),
      feat_dim_(cfg.feat_dim),
      patch_size_(cfg.patch_size),
      mean_mode_(cfg.dit_mean_mode),
      opts_(o) {}

at::Tensor UnifiedCFM::schedule(int64_t n) const {
  if (n < 1) throw Error("feat_decoder: inference timesteps must be at least 1, got " + std::to_string(n));
  // Op by op in the module dtype: each op rounds (bf16), as in Python.
  const at::Tensor t = at::linspace(1, 0, n + 1, opts_.tensor());
  at::Tensor sway = at::cos(t * (kPi / 2));
  sway = sway - 1;
  sway = sway + t;
  return t + sway * kSwaySamplingCoef;
}

at::Tensor UnifiedCFM::time_embedding(int64_t n, int64_t step, const at::Tensor& t, const at::Tensor& dt) const {
  if (n > kTimeMemoMaxSteps) return estimator_.time_embedding(t, dt);
  const auto key = std::make_tuple(n, step, t.size(0));
  {
    const std::lock_guard<std::mutex> lock(time_memo_mutex_);
    const auto it = time_memo_.find(key);
    if (it != time_memo_.end()) return it->second;
  }
  const at::Tensor te = estimator_.time_embedding(t, dt);  // outside the lock: another thread may race, same value
  const std::lock_guard<std::mutex> lock(time_memo_mutex_);
  if (time_memo_.size() < kTimeMemoMaxEntries) time_memo_.emplace(key, te);
  return te;
}

at::Tensor UnifiedCFM::sample(const at::Tensor& mu_in, int64_t n, const at::Tensor& cond_in, double cfg_value,
                              at::Generator& gen, CfmTrace* trace) const {
  if (mu_in.dim() != 2 || mu_in.size(0) == 0 || mu_in.size(1) != estimator_.mu_dim())
    throw Error("feat_decoder: mu must be [B, " + std::to_string(estimator_.mu_dim()) + "], got " +
                shape_str(mu_in.sizes()));
  const int64_t B = mu_in.size(0);
  if (cond_in.dim() != 3 || cond_in.size(0) != B || cond_in.size(1) != feat_dim_ || cond_in.size(2) != patch_size_)
    throw Error("feat_decoder: cond must be [" + std::to_string(B) + ", " + std::to_string(feat_dim_) + ", " +
                std::to_string(patch_size_) + "], got " + shape_str(cond_in.sizes()));
  if (gen.device().type() != opts_.device.type())
    throw Error("feat_decoder: the random generator is for device " + gen.device().str() +
                " but the model runs on " + opts_.device.str());
  const at::Tensor t_span = schedule(n);  // validates n
  const at::TensorOptions to = opts_.tensor();
  const at::Tensor mu = mu_in.to(to), cond = cond_in.to(to);

  // The only random draw of the call (temperature 1: the ×1.0 is exact and omitted).
  at::Tensor x = at::randn({B, feat_dim_, patch_size_}, gen, to);
  if (trace) {
    trace->noise = x;
    trace->t_span = t_span;
  }

  // Batched CFG inputs: rows [0, B) conditional, rows [B, 2B) unconditional (mu = 0, same cond).
  const at::Tensor mu_cfg = at::cat({mu, at::zeros_like(mu)}, 0);
  const at::Tensor cond_cfg = at::cat({cond, cond}, 0);
  const at::Tensor dt_zero = at::zeros({2 * B}, to);

  at::Tensor t = t_span[0];
  at::Tensor dt = t_span[0] - t_span[1];
  // CFG-zero*: the first max(1, int((n+1)·0.04)) steps use zero velocity, i.e. leave x as is.
  const int64_t zero_init_steps = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(n + 1) * 0.04));
  for (int64_t step = 1; step <= n; ++step) {
    if (step > zero_init_steps) {
      const at::Tensor x_cfg = at::cat({x, x}, 0);
      const at::Tensor t_cfg = t.expand({2 * B}).contiguous();
      const at::Tensor dt_cfg = mean_mode_ ? dt.expand({2 * B}).contiguous() : dt_zero;
      const at::Tensor out = estimator_.forward(x_cfg, mu_cfg, time_embedding(n, step, t_cfg, dt_cfg), cond_cfg);
      if (trace) {
        trace->x_in.push_back(x_cfg);
        trace->t_in.push_back(t_cfg);
        trace->out.push_back(out);
      }
      const at::Tensor pos = out.narrow(0, 0, B), neg = out.narrow(0, B, B);
      const at::Tensor pos_flat = pos.reshape({B, -1}), neg_flat = neg.reshape({B, -1});
      const at::Tensor dot = at::sum(pos_flat * neg_flat, {1}, /*keepdim=*/true);
      const at::Tensor norm = at::sum(at::pow(neg_flat, 2), {1}, /*keepdim=*/true) + 1e-8;
      const at::Tensor s = (dot / norm).view({B, 1, 1});
      const at::Tensor velocity = neg * s + cfg_value * (pos - neg * s);
      x = x - dt * velocity;
    }
    t = t - dt;
    if (step < n) dt = t - t_span[step + 1];
  }
  return x;
}

}  // namespace voxcpm

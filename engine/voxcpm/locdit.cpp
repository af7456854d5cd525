#include "voxcpm/locdit.h"

#include <cmath>

#include "voxcpm/error.h"

namespace voxcpm {
namespace {

const char* kPrefix = "feat_decoder.estimator";

int64_t checked_dit_hidden(const ModelConfig& cfg) {
  const int64_t h = cfg.dit.hidden_dim;
  // The sinusoidal embedding needs an even width and half-1 > 0 (it divides by it).
  if (h % 2 != 0 || h < 4) throw Error(cfg.source + ": dit_config.hidden_dim must be even and at least 4");
  return h;
}

}  // namespace

LocDiT::LocDiT(const Weights& w, const ModelConfig& cfg, const ModuleOptions& o)
    : feat_dim_(cfg.feat_dim),
      hidden_(checked_dit_hidden(cfg)),
      mu_tokens_(cfg.is_v2() ? 2 : 1),
      opts_(o),
      decoder_(w, std::string(kPrefix) + ".decoder", cfg.dit_lm(), o) {
  const std::string p = kPrefix;
  in_proj_ = Linear::load(w, p + ".in_proj", feat_dim_, hidden_, true, o);
  cond_proj_ = Linear::load(w, p + ".cond_proj", feat_dim_, hidden_, true, o);
  out_proj_ = Linear::load(w, p + ".out_proj", hidden_, feat_dim_, true, o);
  time_mlp_.linear_1 = Linear::load(w, p + ".time_mlp.linear_1", hidden_, hidden_, true, o);
  time_mlp_.linear_2 = Linear::load(w, p + ".time_mlp.linear_2", hidden_, hidden_, true, o);
  delta_time_mlp_.linear_1 = Linear::load(w, p + ".delta_time_mlp.linear_1", hidden_, hidden_, true, o);
  delta_time_mlp_.linear_2 = Linear::load(w, p + ".delta_time_mlp.linear_2", hidden_, hidden_, true, o);
}

// [sin(e), cos(e)] with e = (1000·s) · exp(arange(half)·(−ln(10000)/(half−1))), every op in the
// module dtype (a bf16 arange rounds integers above 256), same op order as the official code.
at::Tensor LocDiT::sinusoidal(const at::Tensor& s) const {
  const int64_t half = hidden_ / 2;
  const double c = std::log(10000.0) / static_cast<double>(half - 1);
  const at::Tensor f = at::exp(at::arange(half, s.options()) * (-c));
  const at::Tensor e = (s.unsqueeze(1) * 1000) * f.unsqueeze(0);
  return at::cat({e.sin(), e.cos()}, -1);
}

at::Tensor LocDiT::time_embedding(const at::Tensor& t_in, const at::Tensor& dt_in) const {
  if (t_in.dim() != 1 || dt_in.dim() != 1 || t_in.size(0) == 0 || dt_in.size(0) != t_in.size(0))
    throw Error("feat_decoder.estimator: expected t [N], dt [N]; got t " + shape_str(t_in.sizes()) + ", dt " +
                shape_str(dt_in.sizes()));
  const at::TensorOptions to = opts_.tensor();
  return time_mlp_(sinusoidal(t_in.to(to))) + delta_time_mlp_(sinusoidal(dt_in.to(to)));
}

at::Tensor LocDiT::forward(const at::Tensor& x_in, const at::Tensor& mu_in, const at::Tensor& te,
                           const at::Tensor& cond_in) const {
  const bool shapes_ok = x_in.dim() == 3 && x_in.size(0) > 0 && x_in.size(1) == feat_dim_ && x_in.size(2) > 0 &&
                         cond_in.dim() == 3 && cond_in.size(0) == x_in.size(0) && cond_in.size(1) == feat_dim_ &&
                         mu_in.dim() == 2 && mu_in.size(0) == x_in.size(0) && mu_in.size(1) == mu_dim() &&
                         te.dim() == 2 && te.size(0) == x_in.size(0) && te.size(1) == hidden_;
  if (!shapes_ok)
    throw Error("feat_decoder.estimator: expected x [N, " + std::to_string(feat_dim_) + ", P], mu [N, " +
                std::to_string(mu_dim()) + "], t and dt [N] (time embedding [N, " + std::to_string(hidden_) +
                "]), cond [N, " + std::to_string(feat_dim_) + ", P']; got x " + shape_str(x_in.sizes()) + ", mu " +
                shape_str(mu_in.sizes()) + ", time embedding " + shape_str(te.sizes()) + ", cond " +
                shape_str(cond_in.sizes()));
  const at::TensorOptions to = opts_.tensor();
  const int64_t N = x_in.size(0), prefix = cond_in.size(2);

  const at::Tensor x = in_proj_(x_in.to(to).transpose(1, 2).contiguous());         // [N, P, Dh]
  const at::Tensor cond = cond_proj_(cond_in.to(to).transpose(1, 2).contiguous());  // [N, P', Dh]
  const at::Tensor mu = mu_in.to(to);

  at::Tensor seq;
  if (mu_tokens_ == 1) {  // v1/v1.5: [mu + t, cond, x]
    seq = at::cat({(mu + te).unsqueeze(1), cond, x}, 1);
  } else {  // v2: [mu_lm, mu_res, t, cond, x]
    seq = at::cat({mu.view({N, mu_tokens_, hidden_}), te.unsqueeze(1), cond, x}, 1);
  }
  const int64_t offset = mu_tokens_ + (mu_tokens_ == 1 ? 0 : 1) + prefix;
  const at::Tensor h = decoder_.forward(seq, /*causal=*/false);
  return out_proj_(h.narrow(1, offset, h.size(1) - offset)).transpose(1, 2).contiguous();
}

}  // namespace voxcpm

#include "voxcpm/locenc.h"

#include "voxcpm/error.h"

namespace voxcpm {

LocEnc::LocEnc(const Weights& w, const ModelConfig& cfg, const ModuleOptions& o)
    : patch_size_(cfg.patch_size),
      feat_dim_(cfg.feat_dim),
      hidden_(cfg.encoder.hidden_dim),
      opts_(o),
      in_proj_(Linear::load(w, "feat_encoder.in_proj", cfg.feat_dim, cfg.encoder.hidden_dim, true, o)),
      special_token_(w.get("feat_encoder.special_token", {1, 1, 1, cfg.encoder.hidden_dim}, o.tensor())),
      encoder_(w, "feat_encoder.encoder", cfg.encoder_lm(), o) {}

at::Tensor LocEnc::operator()(const at::Tensor& x_in) const {
  if (x_in.dim() != 4 || x_in.size(2) != patch_size_ || x_in.size(3) != feat_dim_ || x_in.size(0) == 0 ||
      x_in.size(1) == 0)
    throw Error("feat_encoder: input must be [B, T, " + std::to_string(patch_size_) + ", " +
                std::to_string(feat_dim_) + "], got " + shape_str(x_in.sizes()));
  const int64_t B = x_in.size(0), T = x_in.size(1), P = x_in.size(2);
  at::Tensor x = in_proj_(x_in.to(opts_.tensor()));                     // [B, T, P, Eh]
  x = at::cat({special_token_.expand({B, T, 1, hidden_}), x}, 2);        // special token first
  at::Tensor h = encoder_.forward(x.reshape({B * T, P + 1, hidden_}), /*causal=*/false);
  return h.select(1, 0).reshape({B, T, hidden_});
}

}  // namespace voxcpm

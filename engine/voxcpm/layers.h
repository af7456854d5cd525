// Small LM-side building blocks (spec §3.4, §3.5): compute dtype/device, Linear, the FSQ
// bottleneck and the stop predictor. Header-only.
#pragma once

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include "voxcpm/config.h"
#include "voxcpm/cpu_linear.h"
#include "voxcpm/error.h"
#include "voxcpm/weights.h"

namespace voxcpm {

// LM-side compute dtype (float32 or bfloat16; the AudioVAE is always float32) and device.
struct ModuleOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  at::TensorOptions tensor() const { return at::TensorOptions().dtype(dtype).device(device); }
};

// y = x W^T + b. On CPUs with AVX2/FMA in float32 the weight is packed at load for the
// micro-kernel of cpu_linear.h (2-3x faster than the BLAS at the 1-18 rows of decoding);
// elsewhere at::linear, the op nn.Linear calls (same kernel choice per input rank).
struct Linear {
  at::Tensor weight;  // [out, in], contiguous, module dtype; undefined when packed
  at::Tensor packed;  // cpu::pack_linear_weight(weight) on AVX2 CPUs in float32
  at::Tensor bias;    // [out] or undefined
  int64_t out_features = 0;

  at::Tensor operator()(const at::Tensor& x) const {
    if (packed.defined()) return cpu::packed_linear(x, packed, out_features, bias);
    return at::linear(x, weight, bias);
  }

  static Linear load(const Weights& w, const std::string& prefix, int64_t in, int64_t out, bool bias,
                     const ModuleOptions& o) {
    Linear l;
    l.out_features = out;
    if (o.device.is_cpu() && o.dtype == at::kFloat && cpu::packed_linear_supported()) {
      l.packed = w.get_transformed(prefix + ".weight", {out, in}, cpu::pack_linear_weight);
      if (!l.packed.is_contiguous()) {  // a recording Weights' placeholder: keep the plain form
        l.weight = l.packed;
        l.packed = at::Tensor();
      }
    } else {
      l.weight = w.get(prefix + ".weight", {out, in}, o.tensor());
    }
    if (bias) l.bias = w.get(prefix + ".bias", {out}, o.tensor());
    return l;
  }
};

// A Python int/float scalar as the official code passes it (integral values as int).
inline at::Scalar python_scalar(double v) {
  if (std::floor(v) == v && std::abs(v) < 9.0e15) return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

// fsq_layer: in_proj → tanh → round(h·scale)/scale → out_proj. In bf16 the product, the
// round (half to even) and the division are three separately rounded ops, as in Python.
struct ScalarQuantizer {
  Linear in_proj, out_proj;
  at::Scalar scale = int64_t{9};

  at::Tensor operator()(const at::Tensor& x) const {
    at::Tensor h = at::tanh(in_proj(x));
    h = at::round(h * scale) / scale;
    return out_proj(h);
  }

  static ScalarQuantizer load(const Weights& w, const ModelConfig& cfg, const ModuleOptions& o) {
    const int64_t hidden = cfg.lm.hidden_size, latent = cfg.scalar_quantization_latent_dim;
    if (!(cfg.scalar_quantization_scale > 0))
      throw Error(cfg.source + ": scalar_quantization_scale must be positive");
    ScalarQuantizer q;
    q.in_proj = Linear::load(w, "fsq_layer.in_proj", hidden, latent, true, o);
    q.out_proj = Linear::load(w, "fsq_layer.out_proj", latent, hidden, true, o);
    q.scale = python_scalar(cfg.scalar_quantization_scale);
    return q;
  }
};

// Stop predictor: stop_head(SiLU(stop_proj(x))) → logits [..., 2]; stop = argmax == 1.
struct StopHead {
  Linear stop_proj, stop_head;

  at::Tensor operator()(const at::Tensor& x) const { return stop_head(at::silu(stop_proj(x))); }

  // One row x [1, H] → its logits [1, 2] (into *logits when given) and whether it stops
  // (argmax == 1, i.e. logit 1 > logit 0; argmax takes the first of equal values). On the packed
  // CPU path the SiLU, the head and the decision are one small loop: as ATen ops (silu, linear,
  // argmax, item) they took 35-50 µs of this 0.1 ms stage, whose weight read is 2 MB.
  bool stops(const at::Tensor& x, at::Tensor* logits = nullptr) const {
    if (!stop_proj.packed.defined() || !stop_head.packed.defined() || x.numel() != x.size(-1)) {
      at::Tensor l = (*this)(x);
      if (logits) *logits = l;
      return l.argmax(-1).view(-1)[0].item<int64_t>() == 1;
    }
    const at::Tensor h = stop_proj(x).contiguous();
    float l[2];
    cpu::packed_linear_of_silu_row(h.data_ptr<float>(), stop_head.packed, 2, l);
    if (logits) *logits = at::tensor({l[0], l[1]}, at::kFloat).view({1, 2});
    return l[1] > l[0];
  }

  static StopHead load(const Weights& w, const ModelConfig& cfg, const ModuleOptions& o) {
    const int64_t hidden = cfg.lm.hidden_size;
    StopHead s;
    s.stop_proj = Linear::load(w, "stop_proj", hidden, hidden, true, o);
    s.stop_head = Linear::load(w, "stop_head", hidden, 2, false, o);
    return s;
  }
};

}  // namespace voxcpm

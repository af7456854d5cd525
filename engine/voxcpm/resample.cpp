#include "voxcpm/resample.h"

#include <cmath>
#include <numeric>

#include <ATen/ATen.h>

#include "voxcpm/error.h"

namespace voxcpm {

std::vector<float> resample(const std::vector<float>& in, int64_t from_rate, int64_t to_rate) {
  if (from_rate <= 0 || to_rate <= 0) throw Error("resample: sample rates must be positive");
  if (from_rate == to_rate || in.empty()) return in;
  const int64_t g = std::gcd(from_rate, to_rate);
  const int64_t orig = from_rate / g, fresh = to_rate / g;
  const double width_param = 6.0, rolloff = 0.99;
  const double base = static_cast<double>(std::min(orig, fresh)) * rolloff;
  const int64_t width = static_cast<int64_t>(std::ceil(width_param * orig / base));

  // Kernel [fresh, 1, 2*width + orig] exactly as torchaudio builds it (float32 ops).
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor idx = at::arange(-width, width + orig, f32).unsqueeze(0).unsqueeze(0) / static_cast<double>(orig);
  at::Tensor t = at::arange(0, -fresh, -1, f32).unsqueeze(1).unsqueeze(2) / static_cast<double>(fresh) + idx;
  t = t * base;
  t = t.clamp(-width_param, width_param);
  at::Tensor window = at::cos(t * M_PI / width_param / 2).pow(2);
  t = t * M_PI;
  const double scale = base / orig;
  at::Tensor kernel = at::where(t == 0, at::ones({}, f32), t.sin() / t);
  kernel = kernel * (window * scale);

  const int64_t n = static_cast<int64_t>(in.size());
  at::Tensor x = at::from_blob(const_cast<float*>(in.data()), {1, n}, f32);
  x = at::constant_pad_nd(x, {width, width + orig});
  at::Tensor y = at::conv1d(x.unsqueeze(1), kernel, {}, orig);  // [1, fresh, frames]
  y = y.transpose(1, 2).reshape({-1});
  const auto target = static_cast<int64_t>(std::ceil(static_cast<float>(static_cast<double>(fresh) * n / orig)));
  y = y.slice(0, 0, std::min<int64_t>(target, y.size(0))).contiguous();
  return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
}

}  // namespace voxcpm

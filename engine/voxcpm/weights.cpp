#include "voxcpm/weights.h"

#include <sstream>

#include <ATen/ATen.h>

#include "voxcpm/error.h"

namespace voxcpm {

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

Weights Weights::load(const std::string& path) { return Weights(read_tensor_file(path), path); }

Weights Weights::synthesizing(Initializer init, std::string source) {
  Weights w({}, std::move(source));
  w.init_ = std::move(init);
  return w;
}

const at::Tensor& Weights::find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(source_ + ": tensor '" + name + "' is missing");
  return it->second;
}

at::Tensor Weights::raw(const std::string& name, const std::vector<int64_t>& shape) const {
  if (init_ && !contains(name)) tensors_[name] = init_(name, shape);
  const at::Tensor& t = find(name);
  if (t.sizes() != at::IntArrayRef(shape))
    throw Error(source_ + ": tensor '" + name + "' has shape " + shape_str(t.sizes()) + ", expected " +
                shape_str(shape));
  return t;
}

at::Tensor Weights::get(const std::string& name, const std::vector<int64_t>& shape,
                        const at::TensorOptions& opts) const {
  at::Tensor t = raw(name, shape);
  if (!at::isFloatingType(t.scalar_type()))
    throw Error(source_ + ": tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) +
                ", expected a floating-point dtype");
  // Always copy: the result must not alias the file mapping.
  return t.to(opts, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

at::Tensor Weights::weight_norm(const std::string& prefix, const std::vector<int64_t>& v_shape,
                                const at::TensorOptions& opts) const {
  if (!contains(prefix + ".weight_v") && contains(prefix + ".weight")) return get(prefix + ".weight", v_shape, opts);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor v = get(prefix + ".weight_v", v_shape, f32);
  std::vector<int64_t> g_shape(v_shape.size(), 1);
  g_shape[0] = v_shape[0];
  at::Tensor g = get(prefix + ".weight_g", g_shape, f32);
  return at::_weight_norm(v, g, 0).to(opts).contiguous();
}

}  // namespace voxcpm

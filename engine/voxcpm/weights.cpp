#include "voxcpm/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
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

namespace {

// Loaded tensors alias a private file mapping of the checkpoint. Once a tensor is converted,
// its pages are handed back to the kernel, so that loading peaks at about the converted model
// rather than the model plus the file. MADV_PAGEOUT never loses data (file pages are re-read on
// access, anonymous memory is at most swapped), so this is safe whatever backs the tensor.
void release_pages(const at::Tensor& t) {
#ifdef MADV_PAGEOUT
  if (!t.device().is_cpu() || t.nbytes() == 0) return;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr()), end = begin + t.nbytes();
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;  // whole pages only
  if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
#else
  (void)t;
#endif
}

}  // namespace

Weights Weights::load(const std::string& path) { return Weights(read_tensor_file(path), path); }

Weights Weights::synthesizing(Initializer init, std::string source) {
  Weights w({}, std::move(source));
  w.init_ = std::move(init);
  return w;
}

Weights Weights::recording(std::string source, Initializer small) {
  Weights w({}, std::move(source));
  w.init_ = std::move(small);
  w.recording_ = true;
  return w;
}

const at::Tensor& Weights::find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(source_ + ": tensor '" + name + "' is missing");
  return it->second;
}

at::Tensor Weights::raw(const std::string& name, const std::vector<int64_t>& shape) const {
  if (recording_ && !contains(name)) {
    at::Tensor t = init_ ? init_(name, shape) : at::Tensor();
    if (!t.defined()) t = at::zeros({}, at::kFloat).expand(shape);
    tensors_[name] = t;
    specs_.push_back({name, t.scalar_type(), shape});
  } else if (init_ && !contains(name)) {
    tensors_[name] = init_(name, shape);
  }
  const at::Tensor& t = find(name);
  if (t.sizes() != at::IntArrayRef(shape))
    throw Error(source_ + ": tensor '" + name + "' has shape " + shape_str(t.sizes()) + ", expected " +
                shape_str(shape));
  return t;
}

at::Tensor Weights::floating(const std::string& name, const std::vector<int64_t>& shape) const {
  at::Tensor t = raw(name, shape);
  if (!at::isFloatingType(t.scalar_type()))
    throw Error(source_ + ": tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) +
                ", expected a floating-point dtype");
  return t;
}

at::Tensor Weights::get_transformed(const std::string& name, const std::vector<int64_t>& shape,
                                    const std::function<at::Tensor(const at::Tensor&)>& make) const {
  at::Tensor t = floating(name, shape);
  if (recording_) return t;
  at::Tensor out = make(t);
  if (!init_ && t.is_contiguous()) release_pages(t);
  return out;
}

at::Tensor Weights::get(const std::string& name, const std::vector<int64_t>& shape,
                        const at::TensorOptions& opts) const {
  at::Tensor t = floating(name, shape);
  // A placeholder stays a broadcast zero in the requested dtype (converting it would allocate).
  if (recording_ && t.numel() > 1 && t.stride(0) == 0) return at::zeros({}, opts).expand(shape);
  // Always copy: the result must not alias the file mapping.
  at::Tensor out = t.to(opts, /*non_blocking=*/false, /*copy=*/true).contiguous();
  if (!init_ && t.is_contiguous()) release_pages(t);
  return out;
}

at::Tensor Weights::weight_norm(const std::string& prefix, const std::vector<int64_t>& v_shape,
                                const at::TensorOptions& opts) const {
  if (!contains(prefix + ".weight_v") && contains(prefix + ".weight")) return get(prefix + ".weight", v_shape, opts);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor v = get(prefix + ".weight_v", v_shape, f32);
  std::vector<int64_t> g_shape(v_shape.size(), 1);
  g_shape[0] = v_shape[0];
  at::Tensor g = get(prefix + ".weight_g", g_shape, f32);
  if (recording_) return at::zeros({}, opts).expand(v_shape);  // the shapes are all a recording needs
  return at::_weight_norm(v, g, 0).to(opts).contiguous();
}

}  // namespace voxcpm

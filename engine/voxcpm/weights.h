// Checked access to the tensors of a checkpoint: every expected tensor must be present with
// the expected shape and a usable dtype, or loading fails with the file and the tensor named.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/TensorOptions.h>

#include "voxcpm/tensor_file.h"

namespace voxcpm {

class Weights {
 public:
  Weights() = default;
  Weights(TensorMap tensors, std::string source) : tensors_(std::move(tensors)), source_(std::move(source)) {}
  // Reads a .safetensors or torch zip file (content-sniffed).
  static Weights load(const std::string& path);
  // A Weights that invents every tensor it is asked for with `init` and keeps it, so that building
  // modules from it yields exactly the checkpoint they expect (voxcpm-make-model writes it out).
  using Initializer = std::function<at::Tensor(const std::string& name, const std::vector<int64_t>& shape)>;
  static Weights synthesizing(Initializer init, std::string source);
  // A Weights that holds no data: it records every tensor asked for (specs(), in the order of
  // the first request) and answers with a placeholder of the requested shape that costs no
  // memory (one zero broadcast to the shape). Building modules from it lists exactly the
  // checkpoint they expect, for a full-size model in a few MB. `small` answers raw() requests
  // whose values the modules read at load (sr_bin_boundaries): it must return real values.
  static Weights recording(std::string source, Initializer small = {});
  // Names, shapes and the dtypes the placeholders were asked in (recording mode; else empty).
  const std::vector<TensorSpec>& specs() const { return specs_; }

  const std::string& source() const { return source_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorMap& tensors() const { return tensors_; }

  // A floating tensor of exactly `shape`, converted to `opts` (dtype and device).
  at::Tensor get(const std::string& name, const std::vector<int64_t>& shape, const at::TensorOptions& opts) const;
  // As get(), but the stored form is `make(t)` of the file's tensor t (checked shape, floating
  // dtype, any dtype/strides): a packed layout built in one pass, without a converted copy first.
  // A recording Weights returns its placeholder instead (`make` is not called).
  at::Tensor get_transformed(const std::string& name, const std::vector<int64_t>& shape,
                             const std::function<at::Tensor(const at::Tensor&)>& make) const;
  // As stored (checked shape; any dtype).
  at::Tensor raw(const std::string& name, const std::vector<int64_t>& shape) const;

  // Weight-normalised conv weight W = g * v / ||v|| (norm over all dims but 0), folded in fp32.
  // Conv1d: v [out, in/groups, k], g [out,1,1]. ConvTranspose1d: v [in, out, k], g [in,1,1].
  // Accepts an already folded `<prefix>.weight` too.
  at::Tensor weight_norm(const std::string& prefix, const std::vector<int64_t>& v_shape,
                         const at::TensorOptions& opts) const;

 private:
  const at::Tensor& find(const std::string& name) const;
  at::Tensor floating(const std::string& name, const std::vector<int64_t>& shape) const;  // raw(), floating dtype
  mutable TensorMap tensors_;  // grows only in synthesizing and recording mode
  std::string source_;
  Initializer init_;
  bool recording_ = false;
  mutable std::vector<TensorSpec> specs_;  // recording mode
};

std::string shape_str(at::IntArrayRef shape);

}  // namespace voxcpm

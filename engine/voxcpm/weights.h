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

  const std::string& source() const { return source_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorMap& tensors() const { return tensors_; }

  // A floating tensor of exactly `shape`, converted to `opts` (dtype and device).
  at::Tensor get(const std::string& name, const std::vector<int64_t>& shape, const at::TensorOptions& opts) const;
  // As stored (checked shape; any dtype).
  at::Tensor raw(const std::string& name, const std::vector<int64_t>& shape) const;

  // Weight-normalised conv weight W = g * v / ||v|| (norm over all dims but 0), folded in fp32.
  // Conv1d: v [out, in/groups, k], g [out,1,1]. ConvTranspose1d: v [in, out, k], g [in,1,1].
  // Accepts an already folded `<prefix>.weight` too.
  at::Tensor weight_norm(const std::string& prefix, const std::vector<int64_t>& v_shape,
                         const at::TensorOptions& opts) const;

 private:
  const at::Tensor& find(const std::string& name) const;
  mutable TensorMap tensors_;  // grows only in synthesizing mode
  std::string source_;
  Initializer init_;
};

std::string shape_str(at::IntArrayRef shape);

}  // namespace voxcpm

// Readers and writers of the checkpoint formats VoxCPM publishes: safetensors and PyTorch
// zip checkpoints (torch.save). Tensors come back on the CPU in their stored dtype.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

namespace voxcpm {

// Ordered so that iteration (and anything written from it) is deterministic.
using TensorMap = std::map<std::string, at::Tensor>;

// What a streaming writer must know about a tensor before its data: the file header (or
// pickle) comes first. The producer hands over tensor `index` (CPU, exactly that dtype and
// shape) when the writer reaches it, in order, once each; only one tensor is alive at a time,
// so files larger than memory can be written. A mismatch throws Error naming the tensor.
struct TensorSpec {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
};
using TensorProducer = std::function<at::Tensor(size_t index)>;

// safetensors: u64 header length, JSON header, raw little-endian data. The file is mapped,
// the returned tensors share the mapping (copy-on-write) and keep it alive. F32, BF16, F16,
// F64, I64, I32, I16, I8, U8, BOOL. Every offset, shape and size is checked against the
// file; any inconsistency throws voxcpm::Error naming the file and the tensor.
TensorMap read_safetensors(const std::string& path);
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs, const TensorProducer& produce,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// torch.save zip checkpoints (pytorch_model.bin, audiovae.pth): `<root>/data.pkl` read by a
// restricted unpickler that accepts only what a state dict needs, `<root>/data/<n>` storages.
// A top-level {"state_dict": {...}} wrapper is unwrapped.
TensorMap read_torch_zip(const std::string& path);
void write_torch_zip(const std::string& path, const TensorMap& tensors, bool wrap_in_state_dict = true);
void write_torch_zip(const std::string& path, const std::vector<TensorSpec>& specs, const TensorProducer& produce,
                     bool wrap_in_state_dict = true);

// The specs of a map, and a producer that hands its tensors out in that order.
std::vector<TensorSpec> specs_of(const TensorMap& tensors);
TensorProducer producer_of(const TensorMap& tensors);

// Dispatch on the content (zip magic vs. safetensors header), not on the file name.
TensorMap read_tensor_file(const std::string& path);

}  // namespace voxcpm

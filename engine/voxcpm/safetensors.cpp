// safetensors reader/writer (format: https://github.com/huggingface/safetensors).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "voxcpm/error.h"
#include "voxcpm/tensor_file.h"

namespace voxcpm {
namespace {

struct Mapping {
  void* data = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (data != MAP_FAILED) munmap(data, size);
  }
};

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  size_t bytes;
};
constexpr DtypeInfo kDtypes[] = {
    {"F32", at::kFloat, 4}, {"BF16", at::kBFloat16, 2}, {"F16", at::kHalf, 2}, {"F64", at::kDouble, 8},
    {"I64", at::kLong, 8},  {"I32", at::kInt, 4},       {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},   {"BOOL", at::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& n) {
  for (const auto& d : kDtypes)
    if (n == d.name) return &d;
  return nullptr;
}
const DtypeInfo* dtype_by_type(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return &d;
  return nullptr;
}

}  // namespace

TensorMap read_safetensors(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw Error(path + ": not a regular file");
  }
  auto map = std::make_shared<Mapping>();
  map->size = static_cast<size_t>(st.st_size);
  if (map->size < 8) {
    close(fd);
    throw Error(path + ": truncated safetensors file (" + std::to_string(map->size) + " bytes)");
  }
  map->data = mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map->data == MAP_FAILED) throw Error(path + ": mmap failed (" + std::strerror(errno) + ")");
  const auto* base = static_cast<const uint8_t*>(map->data);

  uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);  // little-endian host assumed (x86-64, aarch64)
  if (header_len > map->size - 8 || header_len > (uint64_t{100} << 20))
    throw Error(path + ": safetensors header length " + std::to_string(header_len) + " exceeds the file size " +
                std::to_string(map->size) + " (truncated or not a safetensors file)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(base + 8, base + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw Error(path + ": safetensors header is not a JSON object");
  const size_t data_start = 8 + header_len;
  const size_t data_size = map->size - data_start;

  TensorMap out;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();  // no structured binding: clang cannot capture one in `bad`
    const nlohmann::json& info = item.value();
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string& what) { return Error(path + ": tensor '" + name + "': " + what); };
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      throw bad("header entry needs dtype, shape and data_offsets");
    if (!info["dtype"].is_string()) throw bad("dtype is not a string");
    const DtypeInfo* dt = dtype_by_name(info["dtype"].get<std::string>());
    if (!dt) throw bad("unsupported dtype " + info["dtype"].get<std::string>());
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    if (!info["shape"].is_array()) throw bad("shape is not a list");
    for (const auto& d : info["shape"]) {
      if (!d.is_number_unsigned()) throw bad("shape entries must be non-negative integers");
      uint64_t v = d.get<uint64_t>();
      if (v > (uint64_t{1} << 40) || (v && numel > (uint64_t{1} << 40) / v)) throw bad("shape is absurdly large");
      numel *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    const auto& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad("data_offsets must be two non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      throw bad("data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + ") lie outside the " +
                std::to_string(data_size) + " data bytes (truncated file?)");
    if (e - b != numel * dt->bytes)
      throw bad("holds " + std::to_string(e - b) + " bytes, but its shape and dtype need " +
                std::to_string(numel * dt->bytes));
    void* ptr = const_cast<uint8_t*>(base) + data_start + b;
    auto keep = map;
    out[name] = at::from_blob(ptr, shape, [keep](void*) {}, at::TensorOptions().dtype(dt->type));
  }
  return out;
}

std::vector<TensorSpec> specs_of(const TensorMap& tensors) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& [name, t] : tensors) specs.push_back({name, t.scalar_type(), t.sizes().vec()});
  return specs;
}

TensorProducer producer_of(const TensorMap& tensors) {
  std::vector<const at::Tensor*> order;
  order.reserve(tensors.size());
  for (const auto& kv : tensors) order.push_back(&kv.second);
  return [order](size_t i) { return *order.at(i); };
}

void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, specs_of(tensors), producer_of(tensors), metadata);
}

void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs, const TensorProducer& produce,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorSpec& s : specs) {
    const DtypeInfo* dt = dtype_by_type(s.dtype);
    if (!dt) throw Error(path + ": cannot write tensor '" + s.name + "' of dtype " + std::string(c10::toString(s.dtype)));
    if (header.contains(s.name)) throw Error(path + ": tensor '" + s.name + "' is listed twice");
    uint64_t numel = 1;
    for (int64_t d : s.shape) {
      if (d < 0) throw Error(path + ": tensor '" + s.name + "' has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t n = numel * dt->bytes;
    header[s.name] = {{"dtype", dt->name}, {"shape", s.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error(path + ": cannot create file");
  uint64_t len = h.size();
  f.write(reinterpret_cast<const char*>(&len), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (size_t i = 0; i < specs.size(); ++i) {
    const at::Tensor t = produce(i);
    if (!t.defined() || t.scalar_type() != specs[i].dtype || t.sizes() != at::IntArrayRef(specs[i].shape))
      throw Error(path + ": tensor '" + specs[i].name + "' was produced with another dtype or shape than announced");
    const at::Tensor c = t.detach().to(at::kCPU).contiguous();
    f.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    if (!f) throw Error(path + ": write failed");
  }
  f.close();
  if (!f) throw Error(path + ": write failed");
}

}  // namespace voxcpm

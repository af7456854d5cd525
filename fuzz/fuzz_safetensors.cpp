// libFuzzer target: arbitrary bytes as a safetensors file (model.safetensors, audiovae.safetensors).
// voxcpm::Error is the expected answer to a bad file; anything else (another exception, a crash,
// a sanitizer report, a tensor reaching outside the file, a timeout, a huge allocation) is a finding.
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_support.h"
#include "voxcpm/error.h"
#include "voxcpm/tensor_file.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static voxcpm::fuzz::InputFile file;
  try {
    const voxcpm::TensorMap tensors = voxcpm::read_safetensors(file.write(data, size));
    for (const auto& [name, t] : tensors) voxcpm::fuzz::check_tensor(name, t, size);
  } catch (const voxcpm::Error&) {
  }
  return 0;
}

// A byte inserted into or erased from the JSON header breaks its u64 length prefix, so half of
// the time only the header is mutated and the prefix rewritten; otherwise the raw bytes are.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  uint64_t len = 0;
  if (size >= 8) std::memcpy(&len, data, 8);
  if (seed % 2 == 0 || size < 8 || size > max_size || len == 0 || len > size - 8) return LLVMFuzzerMutate(data, size, max_size);
  const std::string rest(reinterpret_cast<const char*>(data) + 8 + len, size - 8 - len);
  std::string header(reinterpret_cast<const char*>(data) + 8, len);
  const size_t room = max_size - 8 - rest.size();
  if (room == 0) return LLVMFuzzerMutate(data, size, max_size);
  header.resize(room);
  const uint64_t new_len = LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(header.data()), len, room);
  std::memcpy(data, &new_len, 8);
  std::memcpy(data + 8, header.data(), new_len);
  std::memcpy(data + 8 + new_len, rest.data(), rest.size());
  return 8 + new_len + rest.size();
}

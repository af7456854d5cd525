// libFuzzer target: arbitrary bytes as a PyTorch zip checkpoint (pytorch_model.bin, audiovae.pth):
// the zip reader and the restricted unpickler. voxcpm::Error is the expected answer to a bad file;
// anything else (another exception, a crash, a sanitizer report, a tensor reaching outside the
// file, a timeout, a huge allocation) is a finding.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "voxcpm/error.h"
#include "voxcpm/tensor_file.h"
#include "voxcpm/zip_archive.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static voxcpm::fuzz::InputFile file;
  try {
    const voxcpm::TensorMap tensors = voxcpm::read_torch_zip(file.write(data, size));
    for (const auto& [name, t] : tensors) voxcpm::fuzz::check_tensor(name, t, size);
  } catch (const voxcpm::Error&) {
  }
  return 0;
}

// Plain byte mutations seldom get past the zip layer into the unpickler: an inserted byte moves
// every offset after it, and any change to data.pkl breaks its CRC. So two thirds of the time,
// when the input is a readable zip, only data.pkl is mutated and the archive is rewritten
// around it (sizes, offsets and CRCs right); otherwise the raw bytes are, to fuzz the zip reader.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  static voxcpm::fuzz::InputFile in, out;
  if (seed % 3 == 0) return LLVMFuzzerMutate(data, size, max_size);
  std::vector<std::pair<std::string, std::string>> entries;
  size_t pkl = SIZE_MAX;
  try {
    voxcpm::zip::Reader zip(in.path(), voxcpm::zip::map_file(in.write(data, size)));
    for (const auto& [name, e] : zip.entries()) {
      const uint8_t* p = zip.data(name);
      if (name.size() > 9 && name.compare(name.size() - 9, 9, "/data.pkl") == 0) pkl = entries.size();
      entries.emplace_back(name, std::string(reinterpret_cast<const char*>(p), e.size));
    }
  } catch (const voxcpm::Error&) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  if (pkl == SIZE_MAX || entries[pkl].second.empty()) return LLVMFuzzerMutate(data, size, max_size);

  std::string& pickle = entries[pkl].second;
  const size_t used = pickle.size();
  pickle.resize(used + (max_size > size ? max_size - size : 0) + 1);  // may grow as much as the input may
  pickle.resize(LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(pickle.data()), used, pickle.size()));
  try {
    voxcpm::zip::Writer writer(out.path());
    for (const auto& [name, bytes] : entries) writer.add(name, bytes.data(), bytes.size());
    writer.finish();
  } catch (const voxcpm::Error&) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  const std::string rebuilt = out.read();
  if (rebuilt.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, rebuilt.data(), rebuilt.size());
  return rebuilt.size();
}

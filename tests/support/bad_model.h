// Broken model directories for the hostile-file tests: a writable copy of a tiny fixture model,
// then one file removed, truncated, or rewritten with a bad tensor or config value. Plus the
// process's resident memory, to show that a failed load allocated nothing big.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/files.h"
#include "voxcpm/tensor_file.h"

namespace voxcpm::test {

// A fresh temporary directory holding copies of every file of fixtures/tiny-<version>.
std::string copy_tiny_model(const std::string& version);

void truncate_file(const std::string& path, uint64_t size);
// config.json rewritten after `edit` changed it.
void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit);
// A checkpoint (safetensors or torch zip, kept in its format) rewritten after `edit` changed its tensors.
void edit_tensors(const std::string& path, const std::function<void(TensorMap&)>& edit);

// False under AddressSanitizer: its shadow memory, redzones and quarantine of freed blocks make
// resident-memory figures say nothing about what the code under test allocated.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VOXCPM_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(VOXCPM_TEST_ASAN)
constexpr bool kRssIsMeaningful = false;
#else
constexpr bool kRssIsMeaningful = true;
#endif

// Resident set size and its peak (VmRSS, VmHWM of /proc/self/status), in bytes.
uint64_t rss_bytes();
uint64_t peak_rss_bytes();
// Resets the peak to the current RSS (Linux clear_refs 5); false where the kernel refuses.
bool reset_peak_rss();

}  // namespace voxcpm::test

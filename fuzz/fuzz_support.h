// Shared by the libFuzzer targets: the input as a file for the path-taking readers, the check
// that turns a broken invariant into a finding, and where the reference material lives.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <ATen/Tensor.h>

namespace voxcpm::fuzz {

// An anonymous in-memory file (memfd) reached through /proc/self/fd: no disk I/O per input and
// nothing left behind. The readers open, fstat and mmap it exactly like a file on disk.
class InputFile {
 public:
  InputFile() {
    fd_ = memfd_create("voxcpm-fuzz-input", MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  const std::string& write(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0 || (size && pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size))) {
      std::perror("writing the fuzz input");
      std::abort();
    }
    return path_;
  }
  // What someone else (a writer given path()) left in the file.
  std::string read() const {
    std::string out;
    char buf[65536];
    for (off_t at = 0;;) {
      const ssize_t n = pread(fd_, buf, sizeof buf, at);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
      at += n;
    }
  }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// A broken invariant is a finding like a crash: libFuzzer saves the input on abort().
#define FUZZ_CHECK(cond, what)                                                          \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s) at %s:%d\n", #cond, std::string(what).c_str(), \
                   __FILE__, __LINE__);                                                 \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

// A tensor a reader handed out must be a view inside its storage, the storage no larger than the
// file it came from, and every byte of it readable (ASan/SEGV otherwise). Returns a byte sum so
// the reads are not optimised away.
inline uint64_t check_tensor(const std::string& name, const at::Tensor& t, size_t file_size) {
  FUZZ_CHECK(t.defined() && t.device().is_cpu(), name);
  const size_t item = t.element_size(), bytes = t.storage().nbytes();
  FUZZ_CHECK(bytes <= file_size, name + ": storage larger than the file");
  if (t.numel() > 0) {
    __int128 last = t.storage_offset();
    for (int64_t d = 0; d < t.dim(); ++d) {
      FUZZ_CHECK(t.stride(d) >= 0, name + ": negative stride");
      last += __int128(t.size(d) - 1) * t.stride(d);
    }
    FUZZ_CHECK(t.storage_offset() >= 0 && (last + 1) * __int128(item) <= __int128(bytes),
               name + ": view reaches outside its storage");
  }
  const auto* p = static_cast<const uint8_t*>(t.storage().data());
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes; ++i) sum += p[i];
  return sum;
}

// Folders of the reference material: the environment (set by meson test) or the configured default.
inline std::string env_or(const char* var, const char* dflt) {
  const char* v = std::getenv(var);
  return v && *v ? v : dflt;
}
inline std::string fixtures_dir() { return env_or("VOXCPM_FIXTURES", VOXCPM_FUZZ_FIXTURES_DIR); }
inline std::string reference_models_dir() { return env_or("VOXCPM_REFERENCE_MODELS", VOXCPM_FUZZ_REFERENCE_MODELS_DIR); }

}  // namespace voxcpm::fuzz

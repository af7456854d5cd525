// Minimal zip container for PyTorch checkpoints, private to torch_zip.cpp (header-only).
// Reads and writes stored (uncompressed) entries only, zip64 aware. The reader trusts only
// the central directory: torch writes data descriptors and zeroes the local header sizes.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "voxcpm/error.h"

namespace voxcpm::zip {

struct Mapping {
  void* data = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (data != MAP_FAILED) munmap(data, size);
  }
};

// Private copy-on-write mapping, so tensors sharing it are writable without touching the file.
inline std::shared_ptr<Mapping> map_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw Error(path + ": not a regular file");
  }
  auto map = std::make_shared<Mapping>();
  map->size = static_cast<size_t>(st.st_size);
  if (map->size < 22) {
    close(fd);
    throw Error(path + ": truncated zip file (" + std::to_string(map->size) + " bytes)");
  }
  map->data = mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map->data == MAP_FAILED) throw Error(path + ": mmap failed (" + std::strerror(errno) + ")");
  return map;
}

inline uint64_t get_le(const uint8_t* p, size_t n) {  // little-endian unsigned of n <= 8 bytes
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// CRC-32 (zip polynomial), slice-by-8: checkpoints are hundreds of MB.
class Crc32 {
 public:
  static uint32_t update(uint32_t crc, const uint8_t* p, size_t n) {
    static const Crc32 c;
    const auto& t = c.t_;
    crc = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
      uint32_t a = crc ^ uint32_t(get_le(p, 4)), b = uint32_t(get_le(p + 4, 4));
      crc = t[7][a & 0xFF] ^ t[6][(a >> 8) & 0xFF] ^ t[5][(a >> 16) & 0xFF] ^ t[4][a >> 24] ^ t[3][b & 0xFF] ^
            t[2][(b >> 8) & 0xFF] ^ t[1][(b >> 16) & 0xFF] ^ t[0][b >> 24];
    }
    while (n--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
  }

 private:
  Crc32() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t_[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t_[s][i] = (t_[s - 1][i] >> 8) ^ t_[0][t_[s - 1][i] & 0xFF];
  }
  std::array<std::array<uint32_t, 256>, 8> t_{};
};

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50;
constexpr uint32_t kEocd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50, kDescriptorSig = 0x08074b50;
constexpr uint64_t kMax32 = 0xFFFFFFFFu;

struct Entry {
  uint64_t local_offset = 0, comp_size = 0, size = 0;
  uint32_t crc = 0;
  uint16_t method = 0, flags = 0;
};

class Reader {
 public:
  Reader(std::string path, std::shared_ptr<Mapping> map) : path_(std::move(path)), map_(std::move(map)) {
    base_ = static_cast<const uint8_t*>(map_->data);
    read_central_directory();
  }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  const std::shared_ptr<Mapping>& mapping() const { return map_; }

  // Offset of a stored entry's bytes in the file, checked to lie inside it.
  uint64_t data_offset(const std::string& name) const {
    const Entry& e = entries_.at(name);
    auto bad = [&](const std::string& what) { return Error(path_ + ": zip entry '" + name + "' " + what); };
    if (e.flags & 1) throw bad("is encrypted");
    if (e.method != 0)
      throw bad("is compressed (method " + std::to_string(e.method) + "); only stored entries are supported");
    if (e.comp_size != e.size) throw bad("is stored but its compressed and uncompressed sizes differ");
    if (e.local_offset > size() || size() - e.local_offset < 30 || get_le(base_ + e.local_offset, 4) != kLocalSig)
      throw bad("has no local header at offset " + std::to_string(e.local_offset) + " (truncated file?)");
    uint64_t start = e.local_offset + 30 + get_le(base_ + e.local_offset + 26, 2) + get_le(base_ + e.local_offset + 28, 2);
    if (start > size() || e.size > size() - start)
      throw bad("(" + std::to_string(e.size) + " bytes at offset " + std::to_string(start) + ") exceeds the file size " +
                std::to_string(size()) + " (truncated file?)");
    return start;
  }
  const uint8_t* data(const std::string& name) const { return base_ + data_offset(name); }

 private:
  size_t size() const { return map_->size; }
  [[noreturn]] void fail(const std::string& what) const { throw Error(path_ + ": " + what); }

  void read_central_directory() {
    // End of central directory: the last 22 bytes plus up to 64 KiB of comment.
    size_t eocd = std::string::npos;
    for (size_t p = size() - 22, stop = size() > 22 + 65535 ? size() - 22 - 65535 : 0;; --p) {
      if (get_le(base_ + p, 4) == kEocdSig && p + 22 + get_le(base_ + p + 20, 2) <= size()) {
        eocd = p;
        break;
      }
      if (p == stop) break;
    }
    if (eocd == std::string::npos) fail("no zip end-of-central-directory record (truncated or not a zip file)");
    if (get_le(base_ + eocd + 4, 2) != 0 || get_le(base_ + eocd + 6, 2) != 0) fail("multi-disk zip archives are not supported");
    uint64_t count = get_le(base_ + eocd + 10, 2), cd_size = get_le(base_ + eocd + 12, 4),
             cd_offset = get_le(base_ + eocd + 16, 4);
    size_t cd_limit = eocd;
    if (eocd >= 20 && get_le(base_ + eocd - 20, 4) == kLocator64Sig) {
      uint64_t off = get_le(base_ + eocd - 20 + 8, 8);
      if (off > eocd - 20 || eocd - 20 - off < 56 || get_le(base_ + off, 4) != kEocd64Sig)
        fail("bad zip64 end-of-central-directory record (truncated file?)");
      count = get_le(base_ + off + 32, 8);
      cd_size = get_le(base_ + off + 40, 8);
      cd_offset = get_le(base_ + off + 48, 8);
      cd_limit = off;
    }
    if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset)
      fail("zip central directory lies outside the file (truncated file?)");
    if (count > cd_size / 46) fail("zip central directory too small for " + std::to_string(count) + " entries");
    const uint8_t* p = base_ + cd_offset;
    const uint8_t* end = p + cd_size;
    for (uint64_t i = 0; i < count; ++i) {
      if (end - p < 46 || get_le(p, 4) != kCentralSig) fail("corrupt zip central directory (entry " + std::to_string(i) + ")");
      size_t name_len = get_le(p + 28, 2), extra_len = get_le(p + 30, 2), comment_len = get_le(p + 32, 2);
      if (size_t(end - p) < 46 + name_len + extra_len + comment_len)
        fail("corrupt zip central directory (entry " + std::to_string(i) + " overruns it)");
      std::string name(reinterpret_cast<const char*>(p + 46), name_len);
      Entry e;
      e.flags = uint16_t(get_le(p + 8, 2));
      e.method = uint16_t(get_le(p + 10, 2));
      e.crc = uint32_t(get_le(p + 16, 4));
      e.comp_size = get_le(p + 20, 4);
      e.size = get_le(p + 24, 4);
      e.local_offset = get_le(p + 42, 4);
      // zip64 extended information: 8-byte values for the fields saturated at 0xFFFFFFFF.
      for (const uint8_t *x = p + 46 + name_len, *xend = x + extra_len; xend - x >= 4;) {
        size_t id = get_le(x, 2), len = get_le(x + 2, 2);
        if (size_t(xend - x - 4) < len) fail("zip entry '" + name + "': corrupt extra field");
        const uint8_t *f = x + 4, *fend = f + len;
        for (uint64_t* v : {&e.size, &e.comp_size, &e.local_offset}) {
          if (id != 1 || *v != kMax32) continue;
          if (fend - f < 8) fail("zip entry '" + name + "': truncated zip64 extra field");
          *v = get_le(f, 8);
          f += 8;
        }
        x += 4 + len;
      }
      entries_[name] = e;
      p += 46 + name_len + extra_len + comment_len;
    }
  }

  std::string path_;
  std::shared_ptr<Mapping> map_;
  const uint8_t* base_ = nullptr;
  std::map<std::string, Entry> entries_;
};

// Streams entries to a file in PyTorch's own layout: data 64-byte aligned through an "FB"
// padding extra field, CRC and sizes in data descriptors, always a zip64 end record.
class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path) {
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_) throw Error(path + ": cannot create file (" + std::strerror(errno) + ")");
    std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  }
  ~Writer() {
    if (f_) {  // not finished: an exception is on its way, leave no half-written file behind
      std::fclose(f_);
      std::remove(path_.c_str());
    }
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void add(const std::string& name, const void* data, uint64_t size) {
    Central c{name, pos_, size, 0};
    const bool big = size >= kMax32;
    const uint64_t start = pos_ + 30 + name.size() + 4 + (big ? 20 : 0);
    const uint64_t pad = (64 - start % 64) % 64;
    std::string h;  // flags 0x0808: data descriptor follows, UTF-8 names; method 0, time 0, crc 0
    put(h, {{kLocalSig, 4}, {big ? 45u : 20u, 2}, {0x0808, 2}, {0, 2}, {0, 4}, {0, 4}, {big ? kMax32 : 0, 4},
            {big ? kMax32 : 0, 4}, {name.size(), 2}, {4 + pad + (big ? 20 : 0), 2}});
    h += name;
    if (big) put(h, {{1, 2}, {16, 2}, {size, 8}, {size, 8}});
    put(h, {{'F', 1}, {'B', 1}, {pad, 2}});
    h.append(pad, 'Z');
    write(h.data(), h.size());
    const uint8_t* p = static_cast<const uint8_t*>(data);
    for (uint64_t done = 0; done < size;) {  // CRC chunk by chunk while it is still in cache
      size_t n = size_t(std::min<uint64_t>(size - done, 1 << 20));
      c.crc = Crc32::update(c.crc, p + done, n);
      write(p + done, n);
      done += n;
    }
    std::string d;
    put(d, {{kDescriptorSig, 4}, {c.crc, 4}, {size, big ? 8 : 4}, {size, big ? 8 : 4}});
    write(d.data(), d.size());
    central_.push_back(c);
  }

  void finish() {
    const uint64_t cd_offset = pos_;
    std::string cd;
    for (const Central& c : central_) {
      std::string x;  // zip64 extra: 8-byte fields for whatever does not fit 32 bits
      if (c.size >= kMax32) put(x, {{c.size, 8}, {c.size, 8}});
      if (c.offset >= kMax32) put(x, {{c.offset, 8}});
      const uint64_t size32 = std::min(c.size, kMax32);
      // made by, needed, flags, method, time+date, crc, sizes, name, extra, comment, disk, attributes, offset
      put(cd, {{kCentralSig, 4}, {45, 2}, {x.empty() ? 20u : 45u, 2}, {0x0808, 2}, {0, 2}, {0, 4}, {c.crc, 4},
               {size32, 4}, {size32, 4}, {c.name.size(), 2}, {x.empty() ? 0 : x.size() + 4, 2}, {0, 2}, {0, 2},
               {0, 2}, {0, 4}, {std::min(c.offset, kMax32), 4}});
      cd += c.name;
      if (!x.empty()) put(cd, {{1, 2}, {x.size(), 2}});
      cd += x;
    }
    const uint64_t eocd64 = cd_offset + cd.size(), n = central_.size(), cd_size = cd.size();
    put(cd, {{kEocd64Sig, 4}, {44, 8}, {0x031e, 2}, {45, 2}, {0, 8}, {n, 8}, {n, 8}, {cd_size, 8}, {cd_offset, 8}});
    put(cd, {{kLocator64Sig, 4}, {0, 4}, {eocd64, 8}, {1, 4}});
    put(cd, {{kEocdSig, 4}, {0, 4}, {std::min<uint64_t>(n, 0xFFFF), 2}, {std::min<uint64_t>(n, 0xFFFF), 2},
             {std::min(cd_size, kMax32), 4}, {std::min(cd_offset, kMax32), 4}, {0, 2}});
    write(cd.data(), cd.size());
    FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) {
      std::remove(path_.c_str());
      throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
    }
  }

 private:
  struct Central {
    std::string name;
    uint64_t offset, size;
    uint32_t crc;
  };
  // Little-endian fields, each {value, bytes}.
  static void put(std::string& s, std::initializer_list<std::pair<uint64_t, int>> fields) {
    for (const auto& [v, n] : fields)
      for (int i = 0; i < n; ++i) s.push_back(char(v >> (8 * i)));
  }
  void write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
    pos_ += n;
  }
  std::string path_;
  FILE* f_ = nullptr;
  uint64_t pos_ = 0;
  std::vector<Central> central_;
};

}  // namespace voxcpm::zip

#include "voxcpm/wav.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "voxcpm/error.h"

namespace voxcpm {
namespace {

constexpr uint16_t kPcm = 1, kFloat = 3, kExtensible = 0xFFFE;

uint32_t u32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint16_t u16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

float decode_sample(const unsigned char* p, uint16_t format, uint16_t bits) {
  if (format == kFloat) {
    if (bits == 32) {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    double d;
    std::memcpy(&d, p, 8);
    return static_cast<float>(d);
  }
  switch (bits) {
    case 8: return (static_cast<int>(p[0]) - 128) / 128.0f;
    case 16: return static_cast<int16_t>(u16(p)) / 32768.0f;
    case 24: {
      int32_t v = static_cast<int32_t>((p[0] << 8) | (p[1] << 16) | (uint32_t(p[2]) << 24)) >> 8;
      return static_cast<float>(v / 8388608.0);
    }
    default: return static_cast<float>(static_cast<int32_t>(u32(p)) / 2147483648.0);
  }
}

void put16(std::string& s, uint16_t v) { s.append({char(v & 0xff), char(v >> 8)}); }
void put32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}

std::string header(int64_t rate, SampleFormat fmt, uint64_t data_bytes) {
  const uint16_t bits = fmt == SampleFormat::S16 ? 16 : 32;
  const uint16_t tag = fmt == SampleFormat::S16 ? kPcm : kFloat;
  std::string h = "RIFF";
  put32(h, static_cast<uint32_t>(std::min<uint64_t>(36 + data_bytes, 0xffffffffu)));
  h += "WAVEfmt ";
  put32(h, 16);
  put16(h, tag);
  put16(h, 1);
  put32(h, static_cast<uint32_t>(rate));
  put32(h, static_cast<uint32_t>(rate * bits / 8));
  put16(h, bits / 8);
  put16(h, bits);
  h += "data";
  put32(h, static_cast<uint32_t>(std::min<uint64_t>(data_bytes, 0xffffffffu)));
  return h;
}

void encode(std::string& out, const float* s, size_t n, SampleFormat fmt) {
  for (size_t i = 0; i < n; ++i) {
    if (fmt == SampleFormat::F32) {
      char b[4];
      std::memcpy(b, &s[i], 4);
      out.append(b, 4);
    } else {
      float c = std::isfinite(s[i]) ? std::fmax(-1.0f, std::fmin(1.0f, s[i])) : 0.0f;
      put16(out, static_cast<uint16_t>(static_cast<int16_t>(std::lrint(c * 32767.0f))));
    }
  }
}

}  // namespace

Audio read_wav(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open audio file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  const auto* b = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  if (n < 12 || std::memcmp(b, "RIFF", 4) != 0 || std::memcmp(b + 8, "WAVE", 4) != 0)
    throw Error(path + ": not a RIFF/WAVE file (only WAV is supported; convert other formats first)");

  uint16_t format = 0, channels = 0, bits = 0;
  uint32_t rate = 0;
  const unsigned char* pcm = nullptr;
  size_t pcm_bytes = 0;
  for (size_t pos = 12; pos + 8 <= n;) {
    const uint32_t size = u32(b + pos + 4);
    const size_t body = pos + 8;
    const size_t avail = n - body;
    if (std::memcmp(b + pos, "fmt ", 4) == 0) {
      if (size < 16 || size > avail) throw Error(path + ": malformed 'fmt ' chunk");
      format = u16(b + body);
      channels = u16(b + body + 2);
      rate = u32(b + body + 4);
      bits = u16(b + body + 14);
      if (format == kExtensible) {
        if (size < 40) throw Error(path + ": malformed WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk");
        format = u16(b + body + 24);  // first two bytes of the subformat GUID
      }
    } else if (std::memcmp(b + pos, "data", 4) == 0) {
      pcm = b + body;
      pcm_bytes = std::min<size_t>(size, avail);  // tolerate a streamed/unfinished size field
    }
    pos = body + size + (size & 1);
    if (size > avail) break;
  }
  if (!format) throw Error(path + ": no 'fmt ' chunk");
  if (!pcm) throw Error(path + ": no 'data' chunk");
  const bool ok = (format == kPcm && (bits == 8 || bits == 16 || bits == 24 || bits == 32)) ||
                  (format == kFloat && (bits == 32 || bits == 64));
  if (!ok)
    throw Error(path + ": unsupported WAV encoding (format tag " + std::to_string(format) + ", " +
                std::to_string(bits) + " bits); use PCM 8/16/24/32 or float 32/64");
  if (channels == 0 || channels > 64) throw Error(path + ": invalid channel count " + std::to_string(channels));
  if (rate == 0 || rate > 768000) throw Error(path + ": invalid sample rate " + std::to_string(rate));

  const size_t frame = size_t(channels) * (bits / 8);
  const size_t frames = pcm_bytes / frame;
  Audio a;
  a.sample_rate = rate;
  a.samples.resize(frames);
  for (size_t i = 0; i < frames; ++i) {
    float sum = 0;
    for (size_t c = 0; c < channels; ++c) sum += decode_sample(pcm + i * frame + c * (bits / 8), format, bits);
    a.samples[i] = channels == 1 ? sum : sum / channels;
  }
  return a;
}

void write_wav(const std::string& path, const float* samples, size_t count, int64_t rate, SampleFormat fmt) {
  WavWriter w(path, rate, fmt);
  w.write(samples, count);
  w.close();
}

WavWriter::WavWriter(const std::string& path, int64_t rate, SampleFormat fmt) : path_(path), rate_(rate), format_(fmt) {
  if (rate <= 0) throw Error(path + ": invalid sample rate");
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(path + ": cannot create (" + std::strerror(errno) + ")");
  file_ = f;
  std::string h = header(rate_, format_, 0);
  std::fwrite(h.data(), 1, h.size(), f);
}

WavWriter::~WavWriter() {
  try {
    close();
  } catch (...) {
  }
}

void WavWriter::write(const float* samples, size_t count) {
  if (!file_) throw Error(path_ + ": write after close");
  std::string buf;
  encode(buf, samples, count, format_);
  if (std::fwrite(buf.data(), 1, buf.size(), static_cast<FILE*>(file_)) != buf.size())
    throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
  data_bytes_ += buf.size();
}

void WavWriter::close() {
  if (!file_) return;
  FILE* f = static_cast<FILE*>(file_);
  file_ = nullptr;
  std::string h = header(rate_, format_, data_bytes_);
  bool ok = std::fseek(f, 0, SEEK_SET) == 0 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) throw Error(path_ + ": could not finish the WAV file");
}

}  // namespace voxcpm

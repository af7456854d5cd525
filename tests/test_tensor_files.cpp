// Checkpoint readers/writers: safetensors and PyTorch zip (fixtures, round trips, hostile input)
// and the checked access of Weights.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "support/files.h"
#include "support/golden.h"
#include "voxcpm/error.h"
#include "voxcpm/tensor_file.h"
#include "voxcpm/weights.h"

using voxcpm::Error;
using voxcpm::TensorMap;

namespace {

// The statement must throw voxcpm::Error whose message contains every given piece.
#define EXPECT_ERROR(stmt, ...)                                                                        \
  do {                                                                                                 \
    try {                                                                                              \
      stmt;                                                                                            \
      ADD_FAILURE() << "no voxcpm::Error from " #stmt;                                                 \
    } catch (const voxcpm::Error& e_) {                                                                \
      for (const std::string& piece_ : std::vector<std::string>{__VA_ARGS__})                          \
        EXPECT_NE(std::string(e_.what()).find(piece_), std::string::npos) << e_.what() << "\n  lacks: " << piece_; \
    }                                                                                                  \
  } while (0)

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
void spit(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Position-weighted sum over every tensor (sorted by name), the same formula as the Python
// one used to get the reference numbers: sum_t sum_i x_i * (i % 7 + 1).
double checksum(const TensorMap& m) {
  double total = 0;
  for (const auto& [name, t] : m) {
    at::Tensor x = t.to(at::kDouble).flatten();
    at::Tensor w = at::arange(x.numel(), at::kDouble).remainder(7) + 1;
    total += (x * w).sum().item<double>();
  }
  return total;
}
int64_t total_numel(const TensorMap& m) {
  int64_t n = 0;
  for (const auto& [name, t] : m) n += t.numel();
  return n;
}
std::vector<double> first_values(const at::Tensor& t, int n) {
  at::Tensor x = t.to(at::kDouble).flatten().slice(0, 0, n).contiguous();
  return std::vector<double>(x.data_ptr<double>(), x.data_ptr<double>() + x.numel());
}

void expect_same(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    ASSERT_NE(it, b.end()) << name;
    EXPECT_EQ(t.scalar_type(), it->second.scalar_type()) << name;
    EXPECT_EQ(t.sizes(), it->second.sizes()) << name;
    EXPECT_TRUE(at::equal(t, it->second)) << name;
  }
}

class TensorFiles : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = voxcpm::test::make_temp_dir(); }
  void TearDown() override { voxcpm::test::remove_tree(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

// ---- hand-made zips and pickles ---------------------------------------------------------

uint32_t crc32_bitwise(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

void le(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s.push_back(char(v >> (8 * i)));
}

struct ZipItem {
  std::string name, data;
  uint16_t method = 0;
};
// A plain zip (sizes and CRC in the local headers, no padding, no zip64): the reader must
// not depend on torch's particular layout.
std::string make_zip(const std::vector<ZipItem>& items) {
  std::string out, cd;
  for (const auto& it : items) {
    uint32_t offset = uint32_t(out.size()), crc = crc32_bitwise(it.data);
    std::string common;
    le(common, it.method, 2);
    le(common, 0, 4);
    le(common, crc, 4);
    le(common, it.data.size(), 4);
    le(common, it.data.size(), 4);
    le(common, it.name.size(), 2);
    le(common, 0, 2);
    le(out, 0x04034b50, 4);
    le(out, 20, 2);
    le(out, 0, 2);
    out += common + it.name + it.data;
    le(cd, 0x02014b50, 4);
    le(cd, 20, 2);
    le(cd, 20, 2);
    le(cd, 0, 2);
    cd += common;
    le(cd, 0, 2);  // comment length
    le(cd, 0, 2);  // disk
    le(cd, 0, 2);  // internal attributes
    le(cd, 0, 4);  // external attributes
    le(cd, offset, 4);
    cd += it.name;
  }
  uint32_t cd_offset = uint32_t(out.size());
  out += cd;
  le(out, 0x06054b50, 4);
  le(out, 0, 4);
  le(out, items.size(), 2);
  le(out, items.size(), 2);
  le(out, cd.size(), 4);
  le(out, cd_offset, 4);
  le(out, 0, 2);
  return out;
}

std::string floats(std::vector<float> v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }

// Protocol-2 pickle builder for the hostile-input tests.
struct Pickle {
  std::string s = "\x80\x02";
  Pickle& op(const std::string& o) {
    s += o;
    return *this;
  }
  Pickle& str(const std::string& v) {
    s += 'X';
    le(s, v.size(), 4);
    s += v;
    return *this;
  }
  Pickle& int1(int v) {
    s += 'K';
    s += char(v);
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) { return op("c" + module + "\n" + name + "\n"); }
};

struct TensorSpec {
  std::string rebuild_module = "torch._utils", rebuild_name = "_rebuild_tensor_v2";
  std::string storage_type = "FloatStorage", key = "0";
  int numel = 4, offset = 0;
  std::vector<int> size{2, 2}, stride{2, 1};
};
// {"state_dict": {"w": tensor}} with the tensor described by `t`.
std::string state_dict_pickle(const TensorSpec& t) {
  Pickle p;
  p.op("}").str("state_dict").op("}").str("w").global(t.rebuild_module, t.rebuild_name).op("((");
  p.str("storage").global("torch", t.storage_type).str(t.key).str("cpu").int1(t.numel).op("tQ");
  p.int1(t.offset).op("(");
  for (int v : t.size) p.int1(v);
  p.op("t(");
  for (int v : t.stride) p.int1(v);
  p.op("t\x89").global("collections", "OrderedDict").op(")RtR").op("ss.");
  return p.s;
}
std::string checkpoint(const std::string& pkl, const std::string& storage = floats({1, 2, 3, 4}),
                       uint16_t storage_method = 0) {
  return make_zip({{"ck/data.pkl", pkl}, {"ck/data/0", storage, storage_method}, {"ck/version", "3\n"}});
}

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(char(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

// A fresh set of tensors of every writable dtype, including views and corner shapes.
TensorMap sample_tensors() {
  at::manual_seed(7);
  TensorMap m;
  m["bf16"] = at::randn({3, 5}).to(at::kBFloat16);
  m["f32"] = at::randn({4});
  m["i32"] = at::arange(-3, 3, at::kInt).reshape({2, 3});
  m["noncontig"] = at::randn({3, 4}).t();  // [4, 3] with strides (1, 4)
  m["sliced"] = at::arange(20, at::kFloat).reshape({4, 5}).slice(1, 1, 4);
  m["f16"] = at::randn({2, 2}).to(at::kHalf);
  m["f64"] = at::randn({3}, at::kDouble);
  m["i64"] = at::tensor({int64_t{-5}, int64_t{1} << 40, int64_t{70000}});
  m["i16"] = at::tensor({-300, 300}, at::kShort);
  m["i8"] = at::tensor({-7, 7}, at::kChar);
  m["u8"] = at::tensor({0, 255}, at::kByte);
  m["bool"] = at::tensor({1, 0, 1}).gt(0);
  m["scalar"] = at::scalar_tensor(2.5);
  m["empty"] = at::zeros({0, 3});
  m["big"] = at::randn({300, 300});  // numel needs BININT
  return m;
}

// ---- fixtures ---------------------------------------------------------------------------

struct FixtureFile {
  const char* file;
  size_t keys;
  int64_t numel;
  double checksum;  // from python3-torch 1.13 torch.load on the same file
};

TEST(TorchZipFixtures, MatchPythonTorchLoad) {
  const FixtureFile files[] = {
      {"tiny-v1/pytorch_model.bin", 80, 260000, 3234.724393930286},
      {"tiny-v1/audiovae.pth", 243, 127878, 7251.670182950944},
      {"tiny-v1.5/audiovae.pth", 299, 118508, 8313.788986671858},
      {"tiny-v2/audiovae.pth", 312, 268381, 216166.12472945038},
  };
  for (const auto& f : files) {
    SCOPED_TRACE(f.file);
    TensorMap m = voxcpm::read_torch_zip(voxcpm::test::fixtures_dir() + "/" + f.file);
    EXPECT_EQ(m.size(), f.keys);
    EXPECT_EQ(total_numel(m), f.numel);
    EXPECT_NEAR(checksum(m), f.checksum, 1e-9 * std::abs(f.checksum));
  }
}

TEST(TorchZipFixtures, TinyV1LanguageModel) {
  TensorMap m = voxcpm::read_torch_zip(voxcpm::test::tiny_model_dir("v1") + "/pytorch_model.bin");
  for (const auto& [name, t] : m) EXPECT_EQ(t.scalar_type(), at::kBFloat16) << name;
  const at::Tensor& emb = m.at("base_lm.embed_tokens.weight");
  EXPECT_EQ(emb.sizes(), at::IntArrayRef({512, 64}));
  EXPECT_EQ(first_values(emb, 3), (std::vector<double>{-0.466796875, -1.1953125, -0.283203125}));
  EXPECT_EQ(first_values(m.at("stop_proj.weight"), 3), (std::vector<double>{0.00982666015625, 0.11962890625, 0.03857421875}));
  EXPECT_EQ(m.at("feat_decoder.estimator.out_proj.bias").sizes(), at::IntArrayRef({64}));
  // Storages are 64-byte aligned in the file, and the tensors share the mapping.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(emb.data_ptr()) % 64, 0u);
}

TEST(TorchZipFixtures, TinyV2AudioVae) {
  TensorMap m = voxcpm::read_torch_zip(voxcpm::test::tiny_model_dir("v2") + "/audiovae.pth");
  ASSERT_EQ(m.size(), 312u);
  const at::Tensor& b = m.at("decoder.sr_bin_boundaries");
  EXPECT_EQ(b.scalar_type(), at::kInt);
  EXPECT_EQ(first_values(b, 3), (std::vector<double>{20000, 30000, 40000}));
  const at::Tensor& g = m.at("decoder.model.7.block.2.block.3.weight_g");
  EXPECT_EQ(g.sizes(), at::IntArrayRef({2, 1, 1}));
  EXPECT_EQ(first_values(g, 2), (std::vector<double>{0.3754754960536957, 0.3324100971221924}));
  EXPECT_EQ(first_values(m.at("encoder.fc_mu.weight_v"), 3),
            (std::vector<double>{1.023598551750183, -1.9491264820098877, 1.617935061454773}));
}

TEST(TorchZipFixtures, ReadTensorFileDispatchesOnContent) {
  const std::string v1 = voxcpm::test::tiny_model_dir("v1") + "/pytorch_model.bin";
  expect_same(voxcpm::read_tensor_file(v1), voxcpm::read_torch_zip(v1));
  const std::string v15 = voxcpm::test::tiny_model_dir("v1.5") + "/model.safetensors";
  TensorMap st = voxcpm::read_tensor_file(v15);
  EXPECT_EQ(st.size(), 80u);
  expect_same(st, voxcpm::read_safetensors(v15));
}

// ---- round trips ------------------------------------------------------------------------

TEST_F(TensorFiles, TorchZipRoundTrip) {
  TensorMap in = sample_tensors();
  for (bool wrap : {true, false}) {
    const std::string p = path(wrap ? "wrapped.pth" : "plain.bin");
    voxcpm::write_torch_zip(p, in, wrap);
    TensorMap out = voxcpm::read_torch_zip(p);
    expect_same(out, in);
    for (const auto& [name, t] : out) {
      if (t.numel() == 0) continue;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64, 0u) << name;
    }
  }
  // The mapping is private: writing to a loaded tensor changes neither the file nor a new read.
  const std::string p = path("wrapped.pth");
  TensorMap a = voxcpm::read_torch_zip(p);
  a.at("f32").fill_(42);
  expect_same(voxcpm::read_torch_zip(p), in);
}

TEST_F(TensorFiles, TorchZipManyTensorsAndEmptyDict) {
  TensorMap many;
  for (int i = 0; i < 2345; ++i) many["t" + std::to_string(i)] = at::full({2}, float(i));
  voxcpm::write_torch_zip(path("many.pth"), many);
  expect_same(voxcpm::read_torch_zip(path("many.pth")), many);
  voxcpm::write_torch_zip(path("one.pth"), {{"x", at::ones({1})}});
  EXPECT_EQ(voxcpm::read_torch_zip(path("one.pth")).size(), 1u);
  voxcpm::write_torch_zip(path("none.pth"), {});
  EXPECT_TRUE(voxcpm::read_torch_zip(path("none.pth")).empty());
}

TEST_F(TensorFiles, TorchZipWriteRejectsUnsupportedDtype) {
  EXPECT_ERROR(voxcpm::write_torch_zip(path("c.pth"), {{"z", at::zeros({2}, at::kComplexFloat)}}), "c.pth", "'z'");
  EXPECT_FALSE(voxcpm::test::path_exists(path("c.pth")));
}

const char* python_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return "?";
  }
}

TEST_F(TensorFiles, TorchZipLoadableByPythonTorch) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  TensorMap in = sample_tensors();
  for (int i = 0; i < 1003; ++i) in["many." + std::to_string(i)] = at::full({1}, float(i));  // SETITEMS batches
  const std::string script = path("check.py");
  spit(script, R"(import sys, torch, zipfile
path, wrapped = sys.argv[1], sys.argv[2] == "1"
assert zipfile.ZipFile(path).testzip() is None, "bad CRC"
for weights_only in (False, True):
    d = torch.load(path, weights_only=weights_only)
    assert (list(d.keys()) == ["state_dict"]) == wrapped, list(d.keys())[:3]
    sd = d["state_dict"] if wrapped else d
for k in sorted(sd):
    x = sd[k].double().flatten()
    w = (torch.arange(x.numel(), dtype=torch.float64) % 7) + 1
    print(k, str(sd[k].dtype)[6:], list(sd[k].shape), repr(float((x * w).sum())))
)");
  for (bool wrap : {true, false}) {
    SCOPED_TRACE(wrap ? "wrapped" : "plain");
    const std::string p = path(wrap ? "py.pth" : "pytorch_model.bin");
    voxcpm::write_torch_zip(p, in, wrap);
    const std::string cmd = "/usr/bin/python3 " + script + " " + p + (wrap ? " 1" : " 0") + " 2>&1";
    FILE* pipe = popen(cmd.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
    ASSERT_EQ(pclose(pipe), 0) << output;
    std::istringstream lines(output);
    size_t seen = 0;
    for (std::string line; std::getline(lines, line); ++seen) {
      std::istringstream f(line);
      std::string name, dtype, shape, rest;
      double sum = 0;
      f >> name >> dtype;
      std::getline(f, rest);
      size_t close = rest.rfind(']');
      ASSERT_NE(close, std::string::npos) << line;
      shape = rest.substr(1, close);
      sum = std::stod(rest.substr(close + 1));
      ASSERT_TRUE(in.count(name)) << line;
      const at::Tensor& t = in.at(name);
      EXPECT_EQ(dtype, python_dtype(t.scalar_type())) << name;
      std::string expect_shape = "[";
      for (int64_t d = 0; d < t.dim(); ++d) expect_shape += (d ? ", " : "") + std::to_string(t.size(d));
      EXPECT_EQ(shape, expect_shape + "]") << name;
      EXPECT_NEAR(sum, checksum({{name, t}}), 1e-9 * (1 + std::abs(sum))) << name;
    }
    EXPECT_EQ(seen, in.size());
  }
}

TEST_F(TensorFiles, SafetensorsRoundTrip) {
  TensorMap in = sample_tensors();
  voxcpm::write_safetensors(path("a.safetensors"), in);
  expect_same(voxcpm::read_safetensors(path("a.safetensors")), in);
  // Content decides, not the name.
  voxcpm::write_safetensors(path("weights.pth"), in);
  expect_same(voxcpm::read_tensor_file(path("weights.pth")), in);
  voxcpm::write_torch_zip(path("weights.safetensors"), in);
  expect_same(voxcpm::read_tensor_file(path("weights.safetensors")), in);
}

// ---- hostile safetensors ----------------------------------------------------------------

std::string safetensors_bytes(const std::string& header, const std::string& data, int64_t claimed_len = -1) {
  std::string out;
  le(out, claimed_len >= 0 ? uint64_t(claimed_len) : header.size(), 8);
  return out + header + data;
}

TEST_F(TensorFiles, SafetensorsBadInputs) {
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string p = path("bad.safetensors");
  spit(p, safetensors_bytes(ok, floats({1, 2})));
  EXPECT_EQ(voxcpm::read_safetensors(p).at("w").sizes(), at::IntArrayRef({2}));

  spit(p, safetensors_bytes(ok, floats({1, 2}), 1000));
  EXPECT_ERROR(voxcpm::read_safetensors(p), p, "header length 1000 exceeds");
  spit(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", floats({1, 2})));
  EXPECT_ERROR(voxcpm::read_safetensors(p), p, "'w'", "outside");
  spit(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", floats({1, 2})));
  EXPECT_ERROR(voxcpm::read_safetensors(p), p, "'w'", "holds 8 bytes", "need 12");
  spit(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],)", floats({1, 2})));
  EXPECT_ERROR(voxcpm::read_safetensors(p), p, "not valid JSON");
  spit(p, safetensors_bytes(R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", floats({1, 2})));
  EXPECT_ERROR(voxcpm::read_safetensors(p), p, "'w'", "unsupported dtype F8_E4M3");
  spit(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", floats({1, 2})));
  EXPECT_ERROR(voxcpm::read_safetensors(p), p, "'w'", "shape");
  spit(p, "1234");
  EXPECT_ERROR(voxcpm::read_safetensors(p), p, "truncated");
}

// ---- hostile zips -----------------------------------------------------------------------

TEST_F(TensorFiles, ReadTensorFileRejectsUnknownAndMissing) {
  const std::string p = path("garbage.bin");
  spit(p, std::string(100, 'x'));
  EXPECT_ERROR(voxcpm::read_tensor_file(p), p, "not a safetensors or PyTorch zip checkpoint");
  spit(p, "");
  EXPECT_ERROR(voxcpm::read_tensor_file(p), p, "not a safetensors or PyTorch zip checkpoint");
  EXPECT_ERROR(voxcpm::read_tensor_file(path("missing.pth")), path("missing.pth"), "cannot open");
  EXPECT_ERROR(voxcpm::read_torch_zip(path("missing.pth")), path("missing.pth"), "cannot open");
  EXPECT_ERROR(voxcpm::read_tensor_file(dir_), dir_);
}

TEST_F(TensorFiles, TorchZipTruncatedAnywhere) {
  const std::string good = path("good.pth");
  voxcpm::write_torch_zip(good, {{"a", at::randn({3, 3})}, {"b", at::arange(5, at::kInt)}, {"c", at::ones({2}).to(at::kBFloat16)}});
  const std::string bytes = slurp(good);
  ASSERT_GT(bytes.size(), 500u);
  const std::string p = path("cut.pth");
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    spit(p, bytes.substr(0, cut));
    EXPECT_ERROR(voxcpm::read_torch_zip(p), p);
    EXPECT_ERROR(voxcpm::read_tensor_file(p), p);
  }
}

TEST_F(TensorFiles, TorchZipCorruptBytesNeverCrash) {
  const std::string good = path("good.pth");
  voxcpm::write_torch_zip(good, {{"a", at::randn({2, 3})}, {"b", at::arange(4, at::kLong)}});
  const std::string bytes = slurp(good);
  const std::string p = path("flip.pth");
  size_t errors = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string b = bytes;
    b[i] = char(b[i] ^ 0xA5);
    spit(p, b);
    try {
      voxcpm::read_torch_zip(p);  // a flipped data byte still loads
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, bytes.size() / 10);  // headers, central directory and pickle are all checked

  std::mt19937 rng(1);
  std::string garbage = "PK\x03\x04";
  for (int i = 0; i < 5000; ++i) garbage.push_back(char(rng()));
  spit(p, garbage);
  EXPECT_ERROR(voxcpm::read_torch_zip(p), p);
  spit(p, "PK\x03\x04" + std::string(30, '\0'));
  EXPECT_ERROR(voxcpm::read_torch_zip(p), p, "end-of-central-directory");
}

TEST_F(TensorFiles, HandMadeCheckpointReads) {
  const std::string p = path("hand.pth");
  spit(p, checkpoint(state_dict_pickle({})));
  TensorMap m = voxcpm::read_torch_zip(p);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(at::equal(m.at("w"), at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({2, 2})));
  // Strides and offsets are honoured: a transposed view into the middle of a storage.
  TensorSpec v;
  v.numel = 6;
  v.offset = 1;
  v.stride = {1, 2};
  spit(p, checkpoint(state_dict_pickle(v), floats({0, 1, 2, 3, 4, 5})));
  m = voxcpm::read_torch_zip(p);
  EXPECT_TRUE(at::equal(m.at("w"), at::tensor({1.f, 3.f, 2.f, 4.f}).reshape({2, 2})));
}

// data.pkl of torch.save({"model": Linear(3, 2).state_dict(), "p": Parameter([0.5, 1.5]), "step": 7,
// "t": arange(6).reshape(2, 3).t()}, pickle_protocol=4) by python3-torch 1.13: FRAME, MEMOIZE,
// SHORT_BINUNICODE, STACK_GLOBAL, BUILD of the OrderedDict _metadata, _rebuild_parameter.
const char* kProtocol4Pickle =
    "80049597010000000000007d94288c056d6f64656c948c0b636f6c6c656374696f6e73948c0b4f726465726564446963"
    "74949394295294288c06776569676874948c0c746f7263682e5f7574696c73948c125f72656275696c645f74656e736f"
    "725f763294939428288c0773746f72616765948c05746f726368948c0c466c6f617453746f726167659493948c013094"
    "8c03637075944b067494514b004b024b0386944b034b018694896804295294749452948c04626961739468092828680a"
    "680d8c013194680f4b027494514b004b0285944b01859489680429529474945294757d948c095f6d6574616461746194"
    "68042952948c00947d948c0776657273696f6e944b01737373628c01709468078c125f72656275696c645f706172616d"
    "6574657294939468092828680a680d8c013294680f4b027494514b004b0285944b018594896804295294749452948868"
    "04295294879452948c0473746570944b078c01749468092828680a680b8c0b4c6f6e6753746f726167659493948c0133"
    "94680f4b067494514b004b034b0286944b014b03869489680429529474945294752e";

TEST_F(TensorFiles, Protocol4PickleFromTorch) {
  std::string i64;
  for (int64_t v = 0; v < 6; ++v) i64.append(reinterpret_cast<const char*>(&v), 8);
  const std::string p = path("p4.pt");
  spit(p, make_zip({{"p4/data.pkl", unhex(kProtocol4Pickle)}, {"p4/data/0", floats({0, 1, 2, 3, 4, 5})},
                    {"p4/data/1", floats({-1, -2})}, {"p4/data/2", floats({0.5, 1.5})}, {"p4/data/3", i64},
                    {"p4/version", "3\n"}}));
  TensorMap m = voxcpm::read_torch_zip(p);
  // No "state_dict" key: the top-level tensors; the nested dict and the int are skipped.
  ASSERT_EQ(m.size(), 2u);
  EXPECT_TRUE(at::equal(m.at("p"), at::tensor({0.5f, 1.5f})));
  EXPECT_TRUE(at::equal(m.at("t"), at::arange(6, at::kLong).reshape({2, 3}).t()));
  EXPECT_EQ(m.at("t").strides(), at::IntArrayRef({1, 3}));
}

TEST_F(TensorFiles, OtherSupportedOpcodes) {
  // {"state_dict": {"w": t, "n": None, "l": [1.5, 2**40, -3], "x": (True,), "y": 70000}, "copy": <same dict>}
  // with BINUNICODE8, LONG_BINPUT/LONG_BINGET, MEMOIZE, LONG1, BINFLOAT, lists, TUPLE1, BININT2, BININT.
  using std::string;
  Pickle p;
  p.op("}").str("state_dict").op("}").op(string("r\x05\0\0\0", 5)).op("(");
  p.op(string("\x8d\x01\0\0\0\0\0\0\0w", 10)).global("torch._utils", "_rebuild_tensor_v2").op("((");
  p.str("storage").global("torch", "FloatStorage").str("0").str("cpu").op(string("M\x05\0", 3)).op("tQ");
  p.op(string("\x8a\x01\x01", 3)).op(string("J\x04\0\0\0", 5)).op("\x85").int1(1).op("\x85\x89").global("collections", "OrderedDict");
  p.op(")RtR");
  p.str("n").op("N");
  p.str("l").op("]\x94").op(string("G\x3f\xf8\0\0\0\0\0\0", 9)).op("a(");
  p.op(string("\x8a\x06\0\0\0\0\0\x01", 8)).op(string("J\xfd\xff\xff\xff", 5)).op("e");
  p.str("x").op("\x88\x85");
  p.str("y").op(string("J\x70\x11\x01\0", 5));
  p.op("us").str("copy").op(string("j\x05\0\0\0", 5)).op("s.");
  const string f = path("ops.pth");
  spit(f, checkpoint(p.s, floats({1, 2, 3, 4, 5})));
  TensorMap m = voxcpm::read_torch_zip(f);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(at::equal(m.at("w"), at::tensor({2.f, 3.f, 4.f, 5.f})));  // storage offset 1 (LONG1), size 4 (BININT)
}

TEST_F(TensorFiles, ForbiddenGlobalsAndOpcodes) {
  const std::string p = path("evil.pth");
  auto expect_rejected = [&](const std::string& pkl, std::vector<std::string> pieces) {
    spit(p, checkpoint(pkl));
    pieces.push_back(p);
    pieces.push_back("ck/data.pkl");
    try {
      voxcpm::read_torch_zip(p);
      ADD_FAILURE() << "accepted: " << pieces.front();
    } catch (const Error& e) {
      for (const auto& piece : pieces)
        EXPECT_NE(std::string(e.what()).find(piece), std::string::npos) << e.what() << "\n  lacks: " << piece;
    }
  };
  // The classic payload: os.system("...") through GLOBAL + REDUCE.
  expect_rejected(Pickle().op("cos\nsystem\n").str("touch " + path("pwned")).op("\x85R.").s, {"forbidden global 'os.system'"});
  EXPECT_FALSE(voxcpm::test::path_exists(path("pwned")));
  expect_rejected(Pickle().global("builtins", "eval").str("1").op("\x85R.").s, {"'builtins.eval'"});
  TensorSpec t;
  t.rebuild_module = "torch.storage";
  t.rebuild_name = "_load_from_bytes";
  expect_rejected(state_dict_pickle(t), {"'torch.storage._load_from_bytes'"});
  t = {};
  t.storage_type = "ComplexFloatStorage";
  expect_rejected(state_dict_pickle(t), {"'torch.ComplexFloatStorage'"});
  // STACK_GLOBAL resolves through the same allow-list.
  expect_rejected(Pickle().str("subprocess").str("call").op("\x93.").s, {"'subprocess.call'"});
  // INT (text protocol 0), POP, an undefined byte.
  expect_rejected(Pickle().op("}I12\n.").s, {"unsupported pickle opcode 0x49 ('I')"});
  expect_rejected(Pickle().op("}0.").s, {"unsupported pickle opcode 0x30"});
  expect_rejected(Pickle().op("}\xff.").s, {"unsupported pickle opcode 0xff"});
  // Malformed but harmless: underflow, missing memo, missing STOP, no MARK, wrong shapes.
  expect_rejected(Pickle().op("s.").s, {"stack underflow"});
  expect_rejected(Pickle().op("h\x07.").s, {"memo entry 7"});
  expect_rejected(Pickle().op("}").s, {"truncated"});
  expect_rejected(Pickle().op("}u.").s, {"MARK"});
  expect_rejected(Pickle().op("]K\x01K\x02s.").s, {"SETITEM expects a dict, got a list"});
  expect_rejected(Pickle().op("K\x01.").s, {"not a dict"});
  expect_rejected(Pickle().global("collections", "OrderedDict").str("a").op("\x85R.").s, {"OrderedDict"});
  expect_rejected(Pickle().global("torch", "FloatStorage").op(")R.").s, {"cannot be called"});
  expect_rejected(Pickle().op("(K\x01Q.").s, {"persistent id"});
  expect_rejected(Pickle().op("NNb.").s, {"BUILD"});
  expect_rejected(Pickle().op(std::string(2000000, '(')).s, {"MARK"});
}

TEST_F(TensorFiles, BadStoragesAndViews) {
  const std::string p = path("view.pth");
  auto rejected = [&](const TensorSpec& t, const std::string& storage, const std::string& piece, uint16_t method = 0) {
    spit(p, checkpoint(state_dict_pickle(t), storage, method));
    EXPECT_ERROR(voxcpm::read_torch_zip(p), p, piece);
  };
  TensorSpec t;
  t.size = {3, 2};
  rejected(t, floats({1, 2, 3, 4}), "outside its storage");
  t = {};
  t.offset = 1;
  rejected(t, floats({1, 2, 3, 4}), "outside its storage");
  t = {};
  t.stride = {3, 1};
  rejected(t, floats({1, 2, 3, 4}), "outside its storage");
  t = {};
  rejected(t, floats({1, 2, 3}), "'ck/data/0' has 12 bytes, expected 4 elements");
  t.key = "9";
  rejected(t, floats({1, 2, 3, 4}), "'ck/data/9' is missing");
  t = {};
  rejected(t, floats({1, 2, 3, 4}), "'ck/data/0' is compressed (method 8)", 8);
  // Stride-0 views may not inflate a storage into a giant tensor.
  t = {};
  t.size = {255, 255, 255};
  t.stride = {0, 0, 0};
  rejected(t, floats({1, 2, 3, 4}), "outside its storage");

  spit(p, make_zip({{"ck/data.pkl", state_dict_pickle({})}, {"ck/data/0", floats({1, 2, 3, 4})}, {"ck/byteorder", "big"}}));
  EXPECT_ERROR(voxcpm::read_torch_zip(p), p, "byteorder 'big'");
  spit(p, make_zip({{"ck/data.pkl", state_dict_pickle({})}, {"ck/data/0", floats({1, 2, 3, 4})}, {"ck/byteorder", "little"}}));
  EXPECT_EQ(voxcpm::read_torch_zip(p).size(), 1u);
  spit(p, make_zip({{"ck/model.pkl", state_dict_pickle({})}}));
  EXPECT_ERROR(voxcpm::read_torch_zip(p), p, "data.pkl");
  spit(p, make_zip({{"ck/data.pkl", state_dict_pickle({}), 8}}));
  EXPECT_ERROR(voxcpm::read_torch_zip(p), p, "'ck/data.pkl' is compressed");
  // A data.pkl whose bytes do not match the CRC of the central directory.
  std::string z = checkpoint(state_dict_pickle({}));
  z[z.find("state_dict")] = 'S';
  spit(p, z);
  EXPECT_ERROR(voxcpm::read_torch_zip(p), p, "CRC");
}

// ---- Weights ----------------------------------------------------------------------------

TEST_F(TensorFiles, WeightsNameFileAndTensorInErrors) {
  const std::string p = path("model.safetensors");
  voxcpm::write_safetensors(p, {{"w", at::ones({2, 3})}, {"ids", at::arange(3, at::kInt)}});
  voxcpm::Weights w = voxcpm::Weights::load(p);
  EXPECT_EQ(w.source(), p);
  EXPECT_TRUE(at::equal(w.get("w", {2, 3}, at::kBFloat16), at::ones({2, 3}, at::kBFloat16)));
  EXPECT_ERROR(w.get("missing.weight", {2, 3}, at::kFloat), p, "'missing.weight'", "missing");
  EXPECT_ERROR(w.get("w", {3, 2}, at::kFloat), p, "'w'", "[2, 3]", "[3, 2]");
  EXPECT_ERROR(w.get("ids", {3}, at::kFloat), p, "'ids'", "Int");
  EXPECT_EQ(w.raw("ids", {3}).scalar_type(), at::kInt);
  EXPECT_ERROR(voxcpm::Weights::load(path("nope.pth")), path("nope.pth"));

  const std::string zp = path("audiovae.pth");
  voxcpm::write_torch_zip(zp, {{"conv.weight_g", at::full({2, 1, 1}, 2.f)}, {"conv.weight_v", at::ones({2, 1, 4})}});
  voxcpm::Weights vae = voxcpm::Weights::load(zp);
  EXPECT_TRUE(at::allclose(vae.weight_norm("conv", {2, 1, 4}, at::kFloat), at::ones({2, 1, 4})));  // 2 * 1 / sqrt(4)
  EXPECT_ERROR(vae.weight_norm("conv", {2, 1, 3}, at::kFloat), zp, "'conv.weight_v'");
  EXPECT_ERROR(vae.weight_norm("other", {2, 1, 4}, at::kFloat), zp, "'other.weight_v'");
}

// ---- regressions found by fuzz/fuzz_torch_zip (each also a seed in fuzz/seeds/fuzz_torch_zip) ----

// A storage at a misaligned offset is copied instead of mapped; for an empty one the copy must not
// memcpy into the null data pointer of the empty tensor (UBSan: empty-misaligned-storage.pth).
TEST_F(TensorFiles, EmptyStorageAtEveryAlignment) {
  TensorSpec t;
  t.numel = 0;
  t.size = {0};
  t.stride = {1};
  const std::string p = path("empty.pth");
  for (int pad = 0; pad < 4; ++pad) {  // shifts ck/data/0 through every offset modulo 4
    SCOPED_TRACE("pad " + std::to_string(pad));
    spit(p, make_zip({{"ck/data.pkl", state_dict_pickle(t)}, {"ck/pad", std::string(pad, 'x')}, {"ck/data/0", ""}}));
    TensorMap m = voxcpm::read_torch_zip(p);
    ASSERT_EQ(m.count("w"), 1u);
    EXPECT_EQ(m.at("w").sizes(), at::IntArrayRef({0}));
  }
}

}  // namespace

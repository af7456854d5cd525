// Writes the seed corpus of one fuzz target into a folder, from the reference material (never
// copied into the repository): fuzz_make_seeds TARGET OUT_DIR.
//   fuzz_tokenizer    the texts of fixtures/tokenizer/VoxCPM1.5.jsonl
//   fuzz_config       every config.json of the tiny fixtures and the published models, as is and compact
//   fuzz_safetensors  the tiny models' checkpoints shrunk to a few elements per tensor (same names,
//                     dtypes and ranks), a tensor of every dtype, and the small golden files as Python wrote them
//   fuzz_torch_zip    the same shrunk state dicts as torch zips, with and without the {"state_dict"} wrapper
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "voxcpm/error.h"
#include "voxcpm/tensor_file.h"

namespace fs = std::filesystem;
using voxcpm::TensorMap;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Every dimension cut to at most 2: the layout a real file has, with a few bytes of data each.
TensorMap shrink(const TensorMap& m, size_t max_tensors) {
  TensorMap out;
  for (const auto& [name, t] : m) {
    if (out.size() == max_tensors) break;
    at::Tensor s = t;
    for (int64_t d = 0; d < s.dim(); ++d) s = s.narrow(d, 0, std::min<int64_t>(s.size(d), 2));
    out[name] = s.contiguous().clone();
  }
  return out;
}

// One tensor of each dtype both formats store, and the corner shapes.
TensorMap every_dtype() {
  TensorMap m;
  m["f32"] = at::arange(4, at::kFloat).reshape({2, 2});
  m["bf16"] = at::ones({3}, at::kBFloat16);
  m["f16"] = at::ones({2}, at::kHalf);
  m["f64"] = at::ones({1}, at::kDouble);
  m["i64"] = at::arange(2, at::kLong);
  m["i32"] = at::arange(3, at::kInt);
  m["i16"] = at::arange(2, at::kShort);
  m["i8"] = at::arange(2, at::kChar);
  m["u8"] = at::arange(2, at::kByte);
  m["bool"] = at::ones({2}, at::kBool);
  m["scalar"] = at::scalar_tensor(1.5);
  m["empty"] = at::zeros({0, 3});
  return m;
}

const char* kVersions[] = {"v1", "v1.5", "v2"};

std::vector<std::pair<std::string, TensorMap>> fixture_checkpoints(const std::string& fixtures) {
  std::vector<std::pair<std::string, TensorMap>> out;
  for (const char* v : kVersions)
    for (const char* f : {"model.safetensors", "pytorch_model.bin", "audiovae.pth"}) {
      const std::string path = fixtures + "/tiny-" + v + "/" + f;
      if (!fs::exists(path)) continue;
      const TensorMap m = voxcpm::read_tensor_file(path);
      const std::string stem = std::string("tiny-") + v + "-" + fs::path(f).stem().string();
      out.emplace_back(stem, shrink(m, 80));  // an LM's worth of names; keeps the seed under -max_len
      out.emplace_back(stem + "-first3", shrink(m, 3));
    }
  out.emplace_back("every-dtype", every_dtype());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " fuzz_tokenizer|fuzz_config|fuzz_safetensors|fuzz_torch_zip OUT_DIR\n";
    return 2;
  }
  const std::string target = argv[1], out = argv[2];
  const std::string fixtures = voxcpm::fuzz::fixtures_dir(), models = voxcpm::fuzz::reference_models_dir();
  size_t n = 0;
  try {
    fs::create_directories(out);
    if (target == "fuzz_tokenizer") {
      std::istringstream lines(slurp(fixtures + "/tokenizer/VoxCPM1.5.jsonl"));
      for (std::string line; std::getline(lines, line);)
        if (!line.empty()) spit(out + "/jsonl-" + std::to_string(n++), nlohmann::json::parse(line).at("text"));
    } else if (target == "fuzz_config") {
      std::vector<std::string> dirs;
      for (const char* v : kVersions) dirs.push_back(fixtures + "/tiny-" + v);
      for (const char* m : {"VoxCPM1.5", "VoxCPM2"}) dirs.push_back(models + "/" + m);
      for (const std::string& d : dirs) {
        const std::string text = slurp(d + "/config.json"), name = fs::path(d).filename().string();
        spit(out + "/" + name + ".json", text);
        spit(out + "/" + name + "-compact.json", nlohmann::json::parse(text).dump());
        n += 2;
      }
    } else if (target == "fuzz_safetensors") {
      for (const auto& [stem, m] : fixture_checkpoints(fixtures)) {
        voxcpm::write_safetensors(out + "/" + stem + ".safetensors", m);
        ++n;
      }
      for (const char* v : kVersions)  // written by Python's safetensors: its header layout, not ours
        for (const auto& e : fs::directory_iterator(fixtures + "/golden-" + v))
          if (e.path().extension() == ".safetensors" && e.file_size() <= 24 * 1024) {
            fs::copy_file(e.path(), out + "/golden-" + v + "-" + e.path().filename().string(),
                          fs::copy_options::overwrite_existing);
            ++n;
          }
    } else if (target == "fuzz_torch_zip") {
      for (const auto& [stem, m] : fixture_checkpoints(fixtures)) {
        voxcpm::write_torch_zip(out + "/" + stem + ".pth", m, true);
        voxcpm::write_torch_zip(out + "/" + stem + "-bare.pth", m, false);
        n += 2;
      }
    } else {
      std::cerr << "unknown target " << target << "\n";
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << "fuzz_make_seeds " << target << ": " << e.what() << "\n";
    return 1;
  }
  std::cout << target << ": " << n << " seeds in " << out << "\n";
  return 0;
}

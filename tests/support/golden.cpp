#include "support/golden.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "voxcpm/model.h"

namespace voxcpm::test {
namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string env_dir(const char* var, const char* what) {
  const char* v = getenv(var);
  if (!v || !*v) throw std::runtime_error(std::string(var) + " is not set (run the tests through meson test)");
  if (!is_dir(v))
    throw std::runtime_error(std::string(what) + " not found at " + v +
                             " (set the meson option, see README); these tests need it and fail without it");
  return v;
}

}  // namespace

std::string fixtures_dir() { return env_dir("VOXCPM_FIXTURES", "golden fixtures"); }
std::string reference_models_dir() { return env_dir("VOXCPM_REFERENCE_MODELS", "reference model files"); }
std::string build_root() { return env_dir("VOXCPM_BUILD_ROOT", "build root"); }

std::string make_temp_dir() {
  std::string tmpl = (getenv("TMPDIR") ? std::string(getenv("TMPDIR")) : std::string("/tmp")) + "/voxcpm-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

const at::Tensor& Golden::operator[](const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw std::runtime_error("golden tensor '" + name + "' not found");
  return it->second;
}

Golden load_golden(const std::string& version, const std::string& name) {
  std::string base = fixtures_dir() + "/golden-" + version + "/" + name;
  Golden g;
  std::ifstream in(base + ".json");
  if (!in) throw std::runtime_error("cannot open " + base + ".json");
  std::stringstream ss;
  ss << in.rdbuf();
  g.meta = nlohmann::json::parse(ss.str());
  g.tensors = read_safetensors(base + ".safetensors");
  return g;
}

std::string tiny_model_dir(const std::string& version) {
  std::string d = fixtures_dir() + "/tiny-" + version;
  if (!is_dir(d)) throw std::runtime_error("tiny model not found at " + d);
  return d;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.detach().to(at::kCPU, at::kDouble) - b.detach().to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

TinyParts load_tiny_parts(const std::string& version) {
  ModelFiles f = ModelFiles::locate(tiny_model_dir(version));
  return {ModelConfig::load(f.config), Weights::load(f.lm_weights)};
}

GenerateOptions golden_options(const Golden& g) {
  const auto& a = g.meta["generation_args"];
  GenerateOptions o;
  o.cfg_value = a["cfg_value"].get<double>();
  o.inference_timesteps = a["inference_timesteps"].get<int64_t>();
  o.max_len = a["max_len"].get<int64_t>();
  o.min_len = a["min_len"].get<int64_t>();
  o.retry_badcase = a["retry_badcase"].get<bool>();
  o.seed = a["seed"].get<uint64_t>();
  o.normalize_whitespace = false;
  const std::string dir = fixtures_dir() + "/golden-" + g.meta["version"].get<std::string>() + "/";
  if (g.meta.contains("prompt_text")) {
    o.prompt_text = g.meta["prompt_text"].get<std::string>();
    o.prompt_wav_path = dir + "prompt.wav";
  }
  if (g.meta.contains("reference_wav")) o.reference_wav_path = dir + g.meta["reference_wav"]["file"].get<std::string>();
  return o;
}

}  // namespace voxcpm::test

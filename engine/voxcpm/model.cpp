#include "voxcpm/model.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "voxcpm/error.h"

namespace voxcpm {
namespace {

bool is_file(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string first_existing(const std::string& dir, std::initializer_list<const char*> names, const char* what) {
  for (const char* n : names)
    if (is_file(dir + "/" + n)) return dir + "/" + n;
  std::string list;
  for (const char* n : names) list += (list.empty() ? "" : " or ") + std::string(n);
  throw Error(dir + ": no " + what + " found (expected " + list + ")");
}

bool cpu_has_native_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0)
      return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
  }
  return false;
}

int64_t count_parameters(const Weights& w) {
  int64_t n = 0;
  for (const auto& [name, t] : w.tensors())
    if (at::isFloatingType(t.scalar_type())) n += t.numel();
  return n;
}

}  // namespace

ModelFiles ModelFiles::locate(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw Error(dir + ": model directory not found");
  ModelFiles f;
  f.dir = dir;
  f.config = first_existing(dir, {"config.json"}, "model config");
  f.lm_weights = first_existing(dir, {"model.safetensors", "pytorch_model.bin"}, "model weights");
  f.vae_weights = first_existing(dir, {"audiovae.safetensors", "audiovae.pth"}, "AudioVAE weights");
  return f;
}

at::Device resolve_device(const std::string& requested) {
  std::string r = requested.empty() ? "cpu" : requested;
  if (r.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA())
      throw Error("device '" + r + "' requested, but this libtorch has no CUDA support or no GPU is visible");
  } else if (r != "cpu") {
    throw Error("device '" + r + "' is not supported (use cpu, cuda or cuda:N)");
  }
  at::Device d = at::kCPU;
  try {
    d = at::Device(r);
  } catch (const c10::Error&) {
    throw Error("device '" + r + "' is not a valid device string");
  }
  // A GPU index past the visible ones would only fail at the first tensor moved there.
  if (d.is_cuda() && d.has_index() && static_cast<size_t>(d.index()) >= at::getNumGPUs())
    throw Error("device '" + r + "' requested, but only " + std::to_string(at::getNumGPUs()) +
                " CUDA device(s) are visible");
  return d;
}

at::ScalarType resolve_dtype(const std::string& requested, const std::string& config_dtype, const at::Device& device) {
  auto parse = [](const std::string& s) -> std::optional<at::ScalarType> {
    if (s == "float32" || s == "fp32" || s == "f32") return at::kFloat;
    if (s == "bfloat16" || s == "bf16") return at::kBFloat16;
    return std::nullopt;
  };
  if (requested != "auto" && !requested.empty()) {
    if (auto t = parse(requested)) return *t;
    throw Error("dtype '" + requested + "' is not supported (use auto, float32 or bfloat16)");
  }
  // The checkpoint's dtype, where the device computes it natively.
  auto cfg = parse(config_dtype);
  if (config_dtype == "float16" || config_dtype == "fp16") cfg = at::kBFloat16;
  if (!cfg) throw Error("config dtype '" + config_dtype + "' is not supported");
  if (*cfg == at::kFloat) return at::kFloat;
  return (device.is_cuda() || cpu_has_native_bf16()) ? at::kBFloat16 : at::kFloat;
}

std::shared_ptr<const Model> Model::load(const std::string& dir, const LoadOptions& o) {
  ModelFiles files = ModelFiles::locate(dir);
  ModelConfig config = ModelConfig::load(files.config);
  ModuleOptions opts;
  opts.device = resolve_device(o.device);
  opts.dtype = resolve_dtype(o.dtype, config.dtype, opts.device);
  Tokenizer tok = Tokenizer::load(dir);
  Weights lm = Weights::load(files.lm_weights);
  Weights vae = Weights::load(files.vae_weights);
  return create(std::move(files), std::move(config), opts, std::move(tok), lm, vae);
}

std::shared_ptr<const Model> Model::create(ModelFiles files, ModelConfig config, const ModuleOptions& opts,
                                           Tokenizer tokenizer, const Weights& lm, const Weights& vae) {
  return std::shared_ptr<const Model>(
      new Model(std::move(files), std::move(config), opts, std::move(tokenizer), lm, vae));
}

Model::Model(ModelFiles files, ModelConfig config, const ModuleOptions& opts, Tokenizer tokenizer, const Weights& lm,
             const Weights& vae)
    : files_(std::move(files)),
      config_(std::move(config)),
      opts_(opts),
      tokenizer_(std::move(tokenizer)),
      base_lm(lm, "base_lm", config_.base_lm(), opts_),
      residual_lm(lm, "residual_lm", config_.residual_lm(), opts_),
      feat_encoder(lm, config_, opts_),
      estimator(lm, config_, opts_),
      feat_decoder(estimator, config_, opts_),
      fsq(ScalarQuantizer::load(lm, config_, opts_)),
      stop(StopHead::load(lm, config_, opts_)),
      enc_to_lm_proj(Linear::load(lm, "enc_to_lm_proj", config_.encoder.hidden_dim, config_.lm.hidden_size, true, opts_)),
      lm_to_dit_proj(Linear::load(lm, "lm_to_dit_proj", config_.lm.hidden_size, config_.dit.hidden_dim, true, opts_)),
      res_to_dit_proj(Linear::load(lm, "res_to_dit_proj", config_.lm.hidden_size, config_.dit.hidden_dim, true, opts_)),
      audio_vae(vae, config_.audio_vae, opts_.device) {
  if (config_.is_v2())
    fusion_concat_proj =
        Linear::load(lm, "fusion_concat_proj", 2 * config_.lm.hidden_size, config_.lm.hidden_size, true, opts_);
  parameter_count_ = count_parameters(lm) + count_parameters(vae);
}

std::string Model::version_name() const {
  if (config_.is_v2()) return "VoxCPM2";
  return config_.patch_size == 2 ? "VoxCPM-0.5B" : "VoxCPM1.5";
}

}  // namespace voxcpm

// voxcpm-make-model: writes a VoxCPM model directory with random weights in the published
// layout and formats (config.json, model.safetensors or pytorch_model.bin, audiovae.pth,
// tokenizer files). Full size for performance work (compute does not depend on the values);
// --tiny for tests and for running the pipeline end to end when no real weights are at hand.
// The weights are generated and written one tensor at a time (the list of tensors comes from
// building the model over recording Weights, which hold no data), so a full-size VoxCPM2 needs
// about one tensor's worth of memory, not the model's.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "voxcpm/error.h"
#include "voxcpm/model.h"
#include "voxcpm/tensor_file.h"
#include "voxcpm/weights.h"

namespace {

using nlohmann::json;
using voxcpm::Error;

const char* kUsage =
    "usage: voxcpm-make-model --like v1|v1.5|v2 --random [--tiny] [--seed N] [--dtype bf16|f32]\n"
    "                         [--tokenizer-from DIR] [--config-from DIR] OUT_DIR\n"
    "\n"
    "  --like V            architecture of VoxCPM-0.5B (v1), VoxCPM1.5 (v1.5) or VoxCPM2 (v2)\n"
    "  --random            random weights (the only kind this tool makes; say it explicitly)\n"
    "  --tiny              tiny widths and depths (for tests and demos), else the published size\n"
    "  --seed N            weight seed (default 1)\n"
    "  --dtype D           LM weight dtype: bf16 (default, as published) or f32\n"
    "  --tokenizer-from D  copy tokenizer.json, tokenizer_config.json, special_tokens_map.json from D\n"
    "                      (default: write a small byte-level tokenizer of our own)\n"
    "  --config-from D     use D/config.json (a published config of the same architecture) instead of\n"
    "                      the built-in one; its \"dtype\" is set from --dtype. Not with --tiny.\n";

// LongRoPE factor lists have head_dim/2 entries rising from ~1 to tens (shape of the published
// lists; the values only change rotary frequencies, not cost).
json rope_factors(int64_t half) {
  json f = json::array();
  for (int64_t i = 0; i < half; ++i) f.push_back(1.0 + 49.0 * std::pow(static_cast<double>(i) / std::max<int64_t>(half - 1, 1), 3.0));
  return f;
}

json make_config(const std::string& like, bool tiny, const std::string& dtype) {
  const bool v2 = like == "v2", v1 = like == "v1";
  const int64_t H = tiny ? 64 : (v2 ? 2048 : 1024);
  const int64_t head_dim = tiny ? 16 : (v2 ? 128 : 64);
  json lm = {{"bos_token_id", 1},
             {"eos_token_id", 2},
             {"hidden_size", H},
             {"intermediate_size", tiny ? 128 : (v2 ? 6144 : 4096)},
             {"max_position_embeddings", 32768},
             {"num_attention_heads", tiny ? 4 : 16},
             {"num_hidden_layers", tiny ? 2 : (v2 ? 28 : 24)},
             {"num_key_value_heads", 2},
             {"rms_norm_eps", 1e-05},
             {"rope_theta", 10000},
             {"rope_scaling",
              {{"type", "longrope"},
               {"long_factor", rope_factors(head_dim / 2)},
               {"short_factor", rope_factors(head_dim / 2)},
               {"original_max_position_embeddings", 32768}}},
             {"vocab_size", tiny ? 512 : 73448},
             {"scale_emb", 12},
             {"dim_model_base", 256},
             {"scale_depth", 1.4},
             {"use_mup", false}};
  if (v2) lm["kv_channels"] = head_dim;
  const int64_t local_layers = tiny ? 1 : (v1 ? 4 : (v2 ? 12 : 8));
  json local = {{"hidden_dim", tiny ? (v2 ? 32 : 64) : 1024},
                {"ffn_dim", tiny ? 96 : 4096},
                {"num_heads", tiny ? 4 : 16},
                {"num_layers", local_layers}};
  if (v2) local["kv_channels"] = tiny ? 16 : 128;
  json dit = local;
  dit["cfm_config"] = {{"sigma_min", 1e-06}, {"solver", "euler"}, {"t_scheduler", "log-norm"}, {"inference_cfg_rate", 2.0}};
  if (v2) dit["mean_mode"] = false;
  json vae;
  if (v1 || v2) {
    vae = {{"encoder_dim", tiny ? 4 : 128}, {"encoder_rates", {2, 5, 8, 8}}, {"latent_dim", 64}};
  } else {
    vae = {{"encoder_dim", tiny ? 2 : 64}, {"encoder_rates", {2, 3, 6, 7, 7}}, {"latent_dim", 64}};
  }
  if (v1) {
    vae["decoder_dim"] = tiny ? 64 : 1536;
    vae["decoder_rates"] = {8, 8, 5, 2};
    vae["sample_rate"] = 16000;
  } else if (v2) {
    vae["decoder_dim"] = tiny ? 128 : 2048;
    vae["decoder_rates"] = {8, 6, 5, 2, 2, 2};
    vae["sr_bin_boundaries"] = {20000, 30000, 40000};
    vae["sample_rate"] = 16000;
    vae["out_sample_rate"] = 48000;
  } else {
    vae["decoder_dim"] = tiny ? 64 : 2048;
    vae["decoder_rates"] = {7, 7, 6, 3, 2};
    vae["sample_rate"] = 44100;
  }
  json c = {{"architecture", v2 ? "voxcpm2" : "voxcpm"},
            {"lm_config", lm},
            {"patch_size", v1 ? 2 : 4},
            {"feat_dim", 64},
            {"scalar_quantization_latent_dim", tiny ? 32 : (v2 ? 512 : 256)},
            {"scalar_quantization_scale", 9},
            {"residual_lm_num_layers", tiny ? 1 : (v1 ? 6 : 8)},
            {"encoder_config", local},
            {"dit_config", dit},
            {"audio_vae_config", vae},
            {"max_length", v1 ? 4096 : 8192},
            {"device", "cuda"},
            {"dtype", dtype == "f32" ? "float32" : "bfloat16"}};
  if (v2) c["residual_lm_no_rope"] = true;
  return c;
}

// A byte-level BPE tokenizer.json in the published format: the ids VoxCPM uses (101..104), the
// 256 byte-fallback tokens, "▁" and printable ASCII, padded with reserved tokens to vocab_size.
json make_tokenizer(int64_t vocab_size) {
  json vocab = json::object();
  int64_t id = 0;
  auto add = [&](const std::string& tok) { vocab[tok] = id++; };
  add("<unk>");
  add("<s>");
  add("</s>");
  while (id < 101) add("<reserved_" + std::to_string(id) + ">");
  for (const char* t : {"<|audio_start|>", "<|audio_end|>", "<|audio_prompt_start|>", "<|audio_prompt_end|>"}) add(t);
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf);
  }
  add("\xE2\x96\x81");  // ▁
  for (char ch = 33; ch < 127; ++ch) add(std::string(1, ch));
  if (id > vocab_size) throw Error("vocab_size too small for the generated tokenizer");
  while (id < vocab_size) add("<reserved_" + std::to_string(id) + ">");
  json added = json::array();
  for (int i = 0; i < 3; ++i)
    added.push_back({{"id", i}, {"content", i == 0 ? "<unk>" : (i == 1 ? "<s>" : "</s>")}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", true}, {"byte_fallback", true}, {"ignore_merges", false},
            {"vocab", vocab}, {"merges", json::array()}}}};
}

// A published config.json, checked to describe the architecture asked for.
json published_config(const std::string& path, const std::string& like, const std::string& dtype) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  json c;
  try {
    c = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  const std::string arch = c.value("architecture", std::string("voxcpm"));
  const int64_t patch = c.value("patch_size", int64_t{0});
  const bool matches = like == "v2" ? arch == "voxcpm2" : (arch == "voxcpm" && patch == (like == "v1" ? 2 : 4));
  if (!matches) throw Error(path + ": describes architecture '" + arch + "' with patch_size " + std::to_string(patch) +
                            ", not a " + like + " model");
  c["dtype"] = dtype == "f32" ? "float32" : "bfloat16";
  return c;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f || !(f << text)) throw Error(path + ": cannot write");
}

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw Error(from + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  write_text(to, ss.str());
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Random values of sane scale per kind of parameter, so that activations stay O(1).
voxcpm::Weights::Initializer initializer(at::Generator gen, const voxcpm::AudioVaeConfig& vae) {
  return [gen, vae](const std::string& name, const std::vector<int64_t>& shape) mutable -> at::Tensor {
    auto randn = [&](double scale) { return at::randn(shape, gen, at::kFloat).mul_(scale); };  // one buffer
    if (ends_with(name, "sr_bin_boundaries"))
      return at::tensor(vae.sr_bin_boundaries, at::kLong).to(at::kInt);
    if (ends_with(name, ".alpha")) return randn(0.3).exp_();                       // Snake
    if (ends_with(name, "weight_g")) return at::ones(shape, at::kFloat);             // unit-norm filters
    if (ends_with(name, "weight_v")) return randn(1.0);
    if (name.find("scale_embed") != std::string::npos) return randn(0.1).add_(1.0);
    if (name.find("bias_embed") != std::string::npos) return randn(0.05);
    if (ends_with(name, ".bias")) return randn(name.rfind("encoder.", 0) == 0 || name.rfind("decoder.", 0) == 0 ? 0.02 : 0.05);
    if (name.find("norm") != std::string::npos) return randn(0.1).add_(1.0);             // RMSNorm weights
    if (name.find("embed_tokens") != std::string::npos || ends_with(name, "special_token")) return randn(0.5);
    if (shape.size() == 2) return randn(1.0 / std::sqrt(static_cast<double>(shape[1])));  // Linear
    return randn(1.0);
  };
}

}  // namespace

int main(int argc, char** argv) {
  voxcpm::cli::Args args(argc, argv, kUsage, {"--like", "--seed", "--dtype", "--tokenizer-from", "--config-from"}, {"--random", "--tiny"});
  const std::string like = args.value_or("--like", "");
  if (like != "v1" && like != "v1.5" && like != "v2") args.fail("--like must be v1, v1.5 or v2");
  if (!args.flag("--random")) args.fail("only random weights can be made: pass --random");
  if (args.positional().size() != 1) args.fail("give exactly one OUT_DIR");
  const std::string dtype = args.value_or("--dtype", "bf16");
  if (dtype != "bf16" && dtype != "f32") args.fail("--dtype must be bf16 or f32");
  const uint64_t seed = static_cast<uint64_t>(args.integer("--seed", 1, 0, 0xffffffffLL));
  const bool tiny = args.flag("--tiny");
  const std::string out = args.positional()[0];
  if (tiny && args.value("--config-from")) args.fail("--config-from makes a full-size model: not with --tiny");

  try {
    if (mkdir(out.c_str(), 0755) != 0 && errno != EEXIST) throw Error(out + ": cannot create directory");
    json config = make_config(like, tiny, dtype);
    if (auto from = args.value("--config-from")) config = published_config(*from + "/config.json", like, dtype);
    write_text(out + "/config.json", config.dump(4) + "\n");
    if (auto from = args.value("--tokenizer-from")) {
      copy_file(*from + "/tokenizer.json", out + "/tokenizer.json");
      for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"}) {
        std::ifstream probe(*from + "/" + f);
        if (probe) copy_file(*from + "/" + f, out + "/" + f);
      }
    } else {
      write_text(out + "/tokenizer.json", make_tokenizer(config["lm_config"]["vocab_size"].get<int64_t>()).dump() + "\n");
    }

    // Build the model over recording Weights: what gets asked for is exactly the checkpoint the
    // loader expects, with the shapes it checks, and no tensor data is held.
    voxcpm::ModelConfig cfg = voxcpm::ModelConfig::load(out + "/config.json");
    auto small = [&cfg](const std::string& name, const std::vector<int64_t>&) -> at::Tensor {
      if (ends_with(name, "sr_bin_boundaries")) return at::tensor(cfg.audio_vae.sr_bin_boundaries, at::kLong).to(at::kInt);
      return {};
    };
    auto lm = voxcpm::Weights::recording("random LM weights", small);
    auto vae = voxcpm::Weights::recording("random AudioVAE weights", small);
    voxcpm::ModelFiles files{out, out + "/config.json", "", ""};
    auto model = voxcpm::Model::create(files, cfg, voxcpm::ModuleOptions{}, voxcpm::Tokenizer::load(out), lm, vae);
    const int64_t params = model->parameter_count();
    model.reset();

    // Then invent and write one tensor at a time, in name order, from one generator.
    at::Generator gen = at::detail::createCPUGenerator(seed);
    auto init = initializer(gen, cfg.audio_vae);
    auto sorted = [](std::vector<voxcpm::TensorSpec> specs, at::ScalarType float_type) {
      std::sort(specs.begin(), specs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
      for (auto& s : specs)
        s.dtype = ends_with(s.name, "sr_bin_boundaries") ? at::kInt : float_type;
      return specs;
    };
    auto producer = [&init](const std::vector<voxcpm::TensorSpec>& specs) {
      return [&init, &specs](size_t i) { return init(specs[i].name, specs[i].shape).to(specs[i].dtype); };
    };
    const auto lm_specs = sorted(lm.specs(), dtype == "bf16" ? at::kBFloat16 : at::kFloat);
    const auto vae_specs = sorted(vae.specs(), at::kFloat);  // the published AudioVAE is float32
    if (like == "v1") {
      voxcpm::write_torch_zip(out + "/pytorch_model.bin", lm_specs, producer(lm_specs), /*wrap_in_state_dict=*/true);
    } else {
      voxcpm::write_safetensors(out + "/model.safetensors", lm_specs, producer(lm_specs));
    }
    voxcpm::write_torch_zip(out + "/audiovae.pth", vae_specs, producer(vae_specs), /*wrap_in_state_dict=*/true);
    std::fprintf(stderr, "wrote %s: %s-like %s model, random weights (seed %llu), %lld parameters\n", out.c_str(),
                 like.c_str(), tiny ? "tiny" : "full-size", static_cast<unsigned long long>(seed),
                 static_cast<long long>(params));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "voxcpm-make-model: %s\n", e.what());
    return 1;
  }
  return 0;
}

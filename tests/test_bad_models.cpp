// Hostile model directories (issue 8): every file missing, truncated at random offsets, tensors of
// the wrong shape or dtype, configs with absurd sizes. Each must fail Model::load with a
// voxcpm::Error naming the file (and the key or tensor), quickly and without allocating from the
// bad values. Built at test time from writable copies of the tiny fixture models.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "support/bad_model.h"
#include "support/golden.h"
#include "voxcpm/model.h"

namespace voxcpm {
namespace {

using json = nlohmann::json;

std::shared_ptr<const Model> load(const std::string& dir) {
  LoadOptions o;
  o.device = "cpu";
  o.dtype = "float32";
  return Model::load(dir, o);
}

// Loads `dir` and expects a voxcpm::Error (no other exception type) holding every needle.
void expect_load_error(const std::string& dir, const std::vector<std::string>& needles, const std::string& what) {
  try {
    load(dir);
    ADD_FAILURE() << what << ": loaded";
  } catch (const Error& e) {
    for (const std::string& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << what << ": " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": not a voxcpm::Error: " << e.what();
  }
}

struct Layout {
  const char* version;
  const char* lm;  // LM weights file
};
const Layout kLayouts[] = {{"v1.5", "model.safetensors"}, {"v1", "pytorch_model.bin"}, {"v2", "model.safetensors"}};

TEST(BadModels, EachMissingFileIsNamed) {
  for (const Layout& l : kLayouts) {
    for (const char* f : {"config.json", l.lm, "audiovae.pth", "tokenizer.json"}) {
      const std::string dir = test::copy_tiny_model(l.version);
      ASSERT_EQ(std::remove((dir + "/" + f).c_str()), 0);
      expect_load_error(dir, {dir, f}, std::string(l.version) + " without " + f);
      test::remove_tree(dir);
    }
    // Read when present, not needed: the model loads without them (tokenizer_config.json only adds
    // the special tokens, which plain text never contains; special_tokens_map.json is never read).
    for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"}) {
      const std::string dir = test::copy_tiny_model(l.version);
      ASSERT_EQ(std::remove((dir + "/" + f).c_str()), 0);
      EXPECT_NO_THROW(load(dir)) << l.version << " without " << f;
      test::remove_tree(dir);
    }
  }
}

// Every file cut at seeded random offsets (and at 0 and one byte short). JSON files are only cut
// before their closing brace, so that what is left is never complete JSON by chance.
TEST(BadModels, TruncatedFilesAreNamed) {
  std::mt19937_64 rng(8);
  int cases = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const Layout& l : kLayouts) {
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", l.lm, "audiovae.pth"}) {
      const std::string probe = test::copy_tiny_model(l.version);
      const uint64_t size = test::file_size(probe + "/" + f);
      uint64_t limit = size - 1;  // largest length that must fail
      if (std::string(f).find(".json") != std::string::npos) {
        std::ifstream in(probe + "/" + f);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        limit = text.rfind('}');
      }
      test::remove_tree(probe);
      std::vector<uint64_t> lengths = {0, limit};
      for (int k = 0; k < 4; ++k) lengths.push_back(std::uniform_int_distribution<uint64_t>(1, limit - 1)(rng));
      for (uint64_t n : lengths) {
        const std::string dir = test::copy_tiny_model(l.version);
        test::truncate_file(dir + "/" + f, n);
        expect_load_error(dir, {std::string("/") + f}, std::string(l.version) + " " + f + " cut to " + std::to_string(n) +
                                                           " of " + std::to_string(size) + " bytes");
        test::remove_tree(dir);
        ++cases;
      }
    }
  }
  // special_tokens_map.json is not read, so a broken one does not matter.
  const std::string dir = test::copy_tiny_model("v1.5");
  test::truncate_file(dir + "/special_tokens_map.json", 10);
  EXPECT_NO_THROW(load(dir));
  test::remove_tree(dir);
  std::printf("[ measured ] %d truncated-file loads in %.2f s\n", cases,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

TEST(BadModels, WrongTensorShapeOrDtypeIsNamed) {
  const std::string up = "base_lm.layers.0.mlp.up_proj.weight";  // [intermediate 128, hidden 64]
  struct Case {
    const char* version;
    const char* file;
    std::function<std::string(TensorMap&)> edit;  // returns the tensor it broke
    std::vector<std::string> needles;
  } cases[] = {
      {"v1.5", "model.safetensors", [&](TensorMap& t) { t[up] = t[up].t().contiguous(); return up; },
       {"has shape [64, 128], expected [128, 64]"}},
      {"v1.5", "model.safetensors", [&](TensorMap& t) { t[up] = t[up].unsqueeze(0).contiguous(); return up; },
       {"has shape [1, 128, 64]"}},
      {"v1.5", "model.safetensors", [&](TensorMap& t) { t[up] = t[up].slice(0, 0, 0).contiguous(); return up; },
       {"has shape [0, 64]"}},
      {"v1.5", "model.safetensors", [&](TensorMap& t) { t[up] = t[up].to(at::kInt); return up; },
       {"dtype Int, expected a floating-point dtype"}},
      {"v1.5", "model.safetensors", [&](TensorMap& t) { t[up] = t[up].to(at::kBool); return up; },
       {"dtype Bool, expected a floating-point dtype"}},
      {"v1.5", "model.safetensors", [&](TensorMap& t) { t.erase("base_lm.norm.weight"); return std::string("base_lm.norm.weight"); },
       {"is missing"}},
      {"v1", "pytorch_model.bin", [&](TensorMap& t) { t[up] = t[up].to(at::kLong); return up; },
       {"dtype Long, expected a floating-point dtype"}},
      {"v1", "pytorch_model.bin", [&](TensorMap& t) { t[up] = t[up].t().contiguous(); return up; },
       {"has shape [64, 128], expected [128, 64]"}},
      {"v1.5", "audiovae.pth",
       [](TensorMap& t) {
         for (auto& [name, tensor] : t)
           if (name.size() > 9 && name.compare(name.size() - 9, 9, ".weight_v") == 0) {
             tensor = at::cat({tensor, tensor}, 0);
             return name;
           }
         return std::string("(no weight_v)");
       },
       {"has shape"}},
      {"v1.5", "audiovae.pth",
       [](TensorMap& t) {
         for (auto& [name, tensor] : t)
           if (name.size() > 9 && name.compare(name.size() - 9, 9, ".weight_g") == 0) {
             tensor = tensor.to(at::kInt);
             return name;
           }
         return std::string("(no weight_g)");
       },
       {"dtype Int"}},
      {"v2", "audiovae.pth",
       [](TensorMap& t) {
         t["decoder.sr_bin_boundaries"] = t["decoder.sr_bin_boundaries"].to(at::kFloat);
         return std::string("decoder.sr_bin_boundaries");
       },
       {"has dtype Float, expected an integer dtype"}},
  };
  for (Case& c : cases) {
    const std::string dir = test::copy_tiny_model(c.version);
    std::string broken;
    test::edit_tensors(dir + "/" + c.file, [&](TensorMap& t) { broken = c.edit(t); });
    std::vector<std::string> needles = c.needles;
    needles.push_back(std::string(c.file) + ": tensor '");
    needles.push_back(broken);
    expect_load_error(dir, needles, std::string(c.version) + " " + c.file + " " + broken);
    test::remove_tree(dir);
  }
}

// audiovae.safetensors is accepted in place of audiovae.pth: the same checks apply to it.
TEST(BadModels, AudioVaeSafetensorsIsCheckedToo) {
  const std::string good = test::copy_tiny_model("v1.5");
  write_safetensors(good + "/audiovae.safetensors", read_tensor_file(good + "/audiovae.pth"));
  ASSERT_EQ(std::remove((good + "/audiovae.pth").c_str()), 0);
  EXPECT_NO_THROW(load(good));
  const uint64_t size = test::file_size(good + "/audiovae.safetensors");
  std::mt19937_64 rng(8);
  for (int k = 0; k < 4; ++k) {
    const uint64_t n = std::uniform_int_distribution<uint64_t>(0, size - 1)(rng);
    const std::string dir = test::make_temp_dir();
    for (const std::string& f : test::list_dir(good))
      test::copy_file(good + "/" + f, dir + "/" + f);
    test::truncate_file(dir + "/audiovae.safetensors", n);
    expect_load_error(dir, {"audiovae.safetensors"}, "audiovae.safetensors cut to " + std::to_string(n));
    test::remove_tree(dir);
  }
  test::edit_tensors(good + "/audiovae.safetensors", [](TensorMap& t) {
    for (auto& [name, tensor] : t)
      if (name.size() > 9 && name.compare(name.size() - 9, 9, ".weight_v") == 0) {
        tensor = tensor.to(at::kShort);
        break;
      }
  });
  expect_load_error(good, {"audiovae.safetensors: tensor '", "has dtype Short"}, "int16 weight_v");
  test::remove_tree(good);
}

// A JSON value at `pointer` of config.json, and what the error must say.
struct ConfigCase {
  std::string pointer;
  json value;
  std::string key, needle;
};

std::vector<ConfigCase> absurd_config_cases() {
  json many = json::array();
  for (int i = 0; i < 70000; ++i) many.push_back(1.0);
  return {
      {"/lm_config/hidden_size", 1000000000, "lm_config.hidden_size", "over the sanity limit of 65536"},
      {"/lm_config/num_hidden_layers", 1000000, "lm_config.num_hidden_layers", "over the sanity limit of 1024"},
      {"/lm_config/vocab_size", int64_t{1000000000000}, "lm_config.vocab_size", "over the sanity limit"},
      {"/lm_config/max_position_embeddings", int64_t{1000000000000}, "lm_config.max_position_embeddings",
       "over the sanity limit"},
      {"/lm_config/intermediate_size", -1, "lm_config.intermediate_size", "must be positive, got -1"},
      {"/lm_config/num_attention_heads", 0, "lm_config.num_attention_heads", "must be positive"},
      {"/lm_config/hidden_size", "NaN", "lm_config.hidden_size", "must be an integer"},
      {"/lm_config/hidden_size", 64.5, "lm_config.hidden_size", "must be an integer"},
      {"/lm_config/hidden_size", 1e308, "lm_config.hidden_size", "out of range"},
      {"/lm_config/hidden_size", std::numeric_limits<uint64_t>::max(), "lm_config.hidden_size", "out of range"},
      {"/lm_config/rms_norm_eps", "nan", "lm_config.rms_norm_eps", "must be a number"},
      {"/lm_config/rms_norm_eps", -1e-5, "lm_config.rms_norm_eps", "must not be negative"},
      {"/lm_config/rope_theta", 0, "lm_config.rope_theta", "must be positive"},
      {"/lm_config/kv_channels", 1000000, "lm_config.kv_channels", "over the sanity limit"},
      {"/lm_config/kv_channels", 4096, "lm_config.max_position_embeddings", "(32768 x 4096) is over the sanity limit"},
      {"/lm_config/rope_scaling/long_factor", many, "lm_config.rope_scaling.long_factor", "over the sanity limit"},
      {"/lm_config/rope_scaling/short_factor/0", -1.0, "lm_config.rope_scaling.short_factor", "positive numbers"},
      {"/lm_config/rope_scaling/original_max_position_embeddings", int64_t{1} << 40,
       "lm_config.rope_scaling.original_max_position_embeddings", "over the sanity limit"},
      {"/patch_size", 0, "patch_size", "must be positive"},
      {"/patch_size", -4, "patch_size", "must be positive, got -4"},
      {"/patch_size", 1000000, "patch_size", "over the sanity limit"},
      {"/feat_dim", 1000000000, "feat_dim", "over the sanity limit"},
      {"/residual_lm_num_layers", 1000000, "residual_lm_num_layers", "over the sanity limit"},
      {"/scalar_quantization_latent_dim", 1000000000, "scalar_quantization_latent_dim", "over the sanity limit"},
      {"/max_length", int64_t{1000000000000}, "max_length", "over the sanity limit"},
      {"/encoder_config/num_layers", 1000000, "encoder_config.num_layers", "over the sanity limit"},
      {"/encoder_config/hidden_dim", -64, "encoder_config.hidden_dim", "must be positive"},
      {"/dit_config/hidden_dim", 1000000000, "dit_config.hidden_dim", "over the sanity limit"},
      {"/dit_config/ffn_dim", int64_t{1} << 40, "dit_config.ffn_dim", "over the sanity limit"},
      {"/dit_config/kv_channels", 1000000, "dit_config.kv_channels", "over the sanity limit"},
      {"/audio_vae_config/decoder_rates", json::array({1024, 1024, 1024}), "audio_vae_config.decoder_rates",
       "multiply to over the sanity limit"},
      {"/audio_vae_config/decoder_rates", json(std::vector<int>(17, 2)), "audio_vae_config.decoder_rates",
       "over the sanity limit of 16"},
      {"/audio_vae_config/encoder_rates", json::array({0}), "audio_vae_config.encoder_rates", "got 0"},
      {"/audio_vae_config/encoder_rates", json::array({2, -3}), "audio_vae_config.encoder_rates", "got -3"},
      {"/audio_vae_config/sample_rate", int64_t{1000000000000}, "audio_vae_config.sample_rate", "over the sanity limit"},
      {"/audio_vae_config/decoder_dim", 1000000000, "audio_vae_config.decoder_dim", "over the sanity limit"},
      {"/audio_vae_config/latent_dim", "64", "audio_vae_config.latent_dim", "must be an integer"},
  };
}

TEST(BadModels, AbsurdConfigValuesFailAtParseNamingTheKey) {
  const std::string dir = test::copy_tiny_model("v1.5");
  std::ifstream in(dir + "/config.json");
  const json base = json::parse(in);
  const bool peak_resets = test::reset_peak_rss();
  const uint64_t rss0 = test::rss_bytes();
  for (const ConfigCase& c : absurd_config_cases()) {
    json j = base;
    j[json::json_pointer(c.pointer)] = c.value;
    const std::string what = c.pointer + " = " + c.value.dump().substr(0, 40);
    test::expect_error_containing([&] { ModelConfig::parse(j.dump(), dir + "/config.json"); },
                                  "config.json: key '" + c.key + "'");
    test::edit_config(dir, [&](json& cfg) { cfg = j; });
    expect_load_error(dir, {dir + "/config.json: key '" + c.key + "'", c.needle}, what);
  }
  // A number too large for a double is a JSON error, not an infinity cast to an integer.
  std::string text = base.dump();
  const std::string from = "\"hidden_size\":64";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "\"hidden_size\":1e999");
  test::expect_error_containing([&] { ModelConfig::parse(text, dir + "/config.json"); }, "config.json");
  const uint64_t peak = test::peak_rss_bytes();
  std::printf("[ measured ] RSS %.1f MB, peak %.1f MB during %zu absurd-config loads (peak reset: %s)\n", rss0 / 1e6,
              peak / 1e6, absurd_config_cases().size(), peak_resets ? "yes" : "no");
  if (peak_resets && test::kRssIsMeaningful) {
    EXPECT_LT(peak, rss0 + (128u << 20)) << "a failed load allocated from the config";
  }
  test::remove_tree(dir);
}

// Values within the limits that disagree with the weights: the first tensor checked fails, and
// nothing sized from the config alone (RoPE tables: positions x head_dim) was built before it.
TEST(BadModels, ConfigDisagreeingWithWeightsAllocatesNothingBig) {
  const std::vector<double> factors32(32, 1.0);  // head_dim 64 needs 32 RoPE factors
  struct Case {
    std::function<void(json&)> edit;
    std::string needle;
  } cases[] = {
      // RoPE tables of 2^18 x 64 floats (about 400 MB while built) if built before the weights were checked.
      {[&](json& j) {
         j["lm_config"]["max_position_embeddings"] = 1 << 18;
         j["lm_config"]["kv_channels"] = 64;
         j["lm_config"]["rope_scaling"]["long_factor"] = factors32;
         j["lm_config"]["rope_scaling"]["short_factor"] = factors32;
       },
       "base_lm.layers.0.self_attn.q_proj.weight' has shape [64, 64], expected [256, 64]"},
      {[&](json& j) {
         j["lm_config"]["hidden_size"] = 65536;
         j["lm_config"]["num_attention_heads"] = 1024;
         j["lm_config"]["rope_scaling"]["long_factor"] = factors32;
         j["lm_config"]["rope_scaling"]["short_factor"] = factors32;
       },
       "base_lm.embed_tokens.weight' has shape [512, 64], expected [512, 65536]"},
      {[](json& j) { j["lm_config"]["vocab_size"] = 1 << 24; }, "embed_tokens.weight' has shape [512, 64]"},
      {[](json& j) { j["lm_config"]["num_hidden_layers"] = 1000; }, "tensor 'base_lm.layers.2."},
      {[](json& j) { j["audio_vae_config"]["decoder_dim"] = 65536; }, "audiovae.pth: tensor '"},
  };
  const bool peak_resets = test::reset_peak_rss();
  const uint64_t rss0 = test::rss_bytes();
  for (Case& c : cases) {
    const std::string dir = test::copy_tiny_model("v1.5");
    test::edit_config(dir, c.edit);
    expect_load_error(dir, {c.needle}, c.needle);
    test::remove_tree(dir);
  }
  const uint64_t peak = test::peak_rss_bytes();
  std::printf("[ measured ] RSS %.1f MB, peak %.1f MB during failed loads of configs within the limits\n", rss0 / 1e6,
              peak / 1e6);
  if (peak_resets && test::kRssIsMeaningful) {
    EXPECT_LT(peak, rss0 + (128u << 20)) << "a failed load allocated from the config";
  }
}

}  // namespace
}  // namespace voxcpm

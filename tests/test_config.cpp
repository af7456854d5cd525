// config.json parsing: the published files, defaults, and errors that name the file and key.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/golden.h"
#include "voxcpm/config.h"
#include "voxcpm/error.h"

using namespace voxcpm;

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Expects parse() to fail with a message that names the source and `key`.
void expect_error(const nlohmann::json& j, const std::string& key) {
  try {
    ModelConfig::parse(j.dump(), "cfg.json");
    FAIL() << "accepted a config with a bad " << key;
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cfg.json"), std::string::npos) << m;
    EXPECT_NE(m.find(key), std::string::npos) << m;
  }
}

}  // namespace

TEST(Config, PublishedVoxCPM15) {
  ModelConfig c = ModelConfig::load(test::reference_models_dir() + "/VoxCPM1.5/config.json");
  EXPECT_EQ(c.architecture, Architecture::VoxCPM);
  EXPECT_EQ(c.lm.hidden_size, 1024);
  EXPECT_EQ(c.lm.num_hidden_layers, 24);
  EXPECT_EQ(c.lm.head_dim(), 64);
  EXPECT_FALSE(c.lm.use_mup);
  EXPECT_EQ(c.lm.rope_scaling.short_factor.size(), 32u);
  EXPECT_EQ(c.patch_size, 4);
  EXPECT_EQ(c.residual_lm_num_layers, 8);
  EXPECT_EQ(c.encoder.num_layers, 8);
  EXPECT_EQ(c.dit.num_layers, 8);
  EXPECT_EQ(c.audio_vae.version, 1);
  EXPECT_EQ(c.audio_vae.hop_length(), 1764);
  EXPECT_EQ(c.audio_vae.decode_hop_length(), 1764);
  EXPECT_EQ(c.sample_rate(), 44100);
  EXPECT_EQ(c.samples_per_patch(), 7056);
  EXPECT_EQ(c.max_length, 8192);
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.residual_lm().vocab_size, 0);
  EXPECT_EQ(c.residual_lm().num_hidden_layers, 8);
  EXPECT_EQ(c.dit_lm().hidden_size, 1024);
}

TEST(Config, PublishedVoxCPM2) {
  ModelConfig c = ModelConfig::load(test::reference_models_dir() + "/VoxCPM2/config.json");
  EXPECT_TRUE(c.is_v2());
  EXPECT_EQ(c.lm.head_dim(), 128);
  EXPECT_TRUE(c.residual_lm_no_rope);
  EXPECT_TRUE(c.residual_lm().no_rope);
  EXPECT_FALSE(c.base_lm().no_rope);
  EXPECT_EQ(c.encoder_lm().head_dim(), 128);
  EXPECT_EQ(c.scalar_quantization_latent_dim, 512);
  EXPECT_EQ(c.audio_vae.version, 2);
  EXPECT_EQ(c.audio_vae.hop_length(), 640);
  EXPECT_EQ(c.audio_vae.decode_hop_length(), 1920);
  EXPECT_EQ(c.sample_rate(), 48000);
  EXPECT_EQ(c.audio_vae.sr_bin_boundaries, (std::vector<int64_t>{20000, 30000, 40000}));
}

TEST(Config, VoxCPM05BDefaultsWithoutAudioVaeConfig) {
  auto j = nlohmann::json::parse(read(test::tiny_model_dir("v1") + "/config.json"));
  j.erase("audio_vae_config");
  j.erase("max_length");
  ModelConfig c = ModelConfig::parse(j.dump(), "v1.json");
  EXPECT_EQ(c.patch_size, 2);
  EXPECT_EQ(c.max_length, 4096);
  EXPECT_EQ(c.audio_vae.decoder_dim, 1536);
  EXPECT_EQ(c.audio_vae.hop_length(), 640);
  EXPECT_EQ(c.sample_rate(), 16000);
}

TEST(Config, ErrorsNameFileAndKey) {
  auto base = nlohmann::json::parse(read(test::reference_models_dir() + "/VoxCPM1.5/config.json"));
  auto j = base;
  j["architecture"] = "voxcpm3";
  expect_error(j, "architecture");
  j = base;
  j["lm_config"].erase("hidden_size");
  expect_error(j, "lm_config.hidden_size");
  j = base;
  j["lm_config"]["num_attention_heads"] = "sixteen";
  expect_error(j, "lm_config.num_attention_heads");
  j = base;
  j["lm_config"]["num_key_value_heads"] = 3;
  expect_error(j, "num_key_value_heads");
  j = base;
  j["lm_config"]["rope_scaling"]["short_factor"] = {1.0, 2.0};
  expect_error(j, "lm_config.rope_scaling.short_factor");
  j = base;
  j.erase("dit_config");
  expect_error(j, "dit_config");
  j = base;
  j["patch_size"] = -4;
  expect_error(j, "patch_size");
  j = base;
  j["audio_vae_config"]["decoder_rates"] = {7, 0};
  expect_error(j, "audio_vae_config.decoder_rates");
  j = base;
  j["feat_dim"] = 32;
  expect_error(j, "feat_dim");
  EXPECT_THROW(ModelConfig::parse("{not json", "x.json"), Error);
  EXPECT_THROW(ModelConfig::parse("[]", "x.json"), Error);
  EXPECT_THROW(ModelConfig::load("/nonexistent/config.json"), Error);
}

// config.json of a VoxCPM model directory: every key of the published files, with the
// defaults of the official pydantic classes, and the per-instance transformer configs
// derived from lm_config (spec §1.2, §3.1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace voxcpm {

enum class Architecture { VoxCPM, VoxCPM2 };  // "voxcpm" (0.5B and 1.5), "voxcpm2"

// Sanity limits of config.json values, far above every published model (VoxCPM2 in brackets), so
// that a hostile or corrupt config fails at parse time instead of making us allocate from it.
namespace config_limits {
constexpr int64_t kWidth = 65536;              // hidden_size, hidden_dim, encoder/decoder_dim (2048)
constexpr int64_t kFfn = 262144;               // intermediate_size, ffn_dim (6144)
constexpr int64_t kLayers = 1024;              // num_hidden_layers, num_layers (28)
constexpr int64_t kHeads = 1024;               // attention and key/value heads (16)
constexpr int64_t kHeadDim = 4096;             // kv_channels (128)
constexpr int64_t kVocab = int64_t{1} << 24;   // vocab_size (73448)
constexpr int64_t kPositions = int64_t{1} << 20;  // max_position_embeddings, max_length (32768, 8192)
constexpr int64_t kRopeElements = int64_t{1} << 24;  // positions x head_dim of one RoPE table (2^22)
constexpr int64_t kPatch = 64;                 // patch_size (4)
constexpr int64_t kFeat = 4096;                // feat_dim, latent_dim (64)
constexpr int64_t kRate = 1000000;             // sample rates in Hz (48000)
constexpr int64_t kRateFactor = 1024;          // one encoder/decoder rate (8)
constexpr size_t kRates = 16;                  // encoder/decoder rates per list (6)
constexpr int64_t kHop = 65536;                // product of a rate list (1920)
constexpr size_t kListEntries = 65536;         // other lists (rope factors: head_dim/2)
}  // namespace config_limits

struct RopeScaling {
  std::string type;  // "longrope" (informational)
  std::vector<double> long_factor, short_factor;
  int64_t original_max_position_embeddings = 0;
};

// One MiniCPM4 transformer instance (base LM, residual LM, LocEnc encoder, LocDiT decoder).
struct TransformerConfig {
  int64_t hidden_size = 0, intermediate_size = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, num_hidden_layers = 0;
  std::optional<int64_t> kv_channels;  // head_dim override
  int64_t vocab_size = 0;               // 0: no embedding table
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-5, rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool use_mup = true;
  double scale_emb = 1.0, scale_depth = 1.0, dim_model_base = 0.0;
  bool no_rope = false;
  int64_t bos_token_id = 1, eos_token_id = 2;

  int64_t head_dim() const { return kv_channels ? *kv_channels : hidden_size / num_attention_heads; }
};

struct LocalModuleConfig {  // encoder_config / dit_config
  int64_t hidden_dim = 1024, ffn_dim = 4096, num_heads = 16, num_layers = 4;
  std::optional<int64_t> kv_channels;
};

struct CfmConfig {  // none of it is used at inference; kept for completeness
  double sigma_min = 1e-6;
  std::string solver = "euler", t_scheduler = "log-norm";
  double training_cfg_rate = 0.1, inference_cfg_rate = 1.0;
  std::string reg_loss_type = "l1";
};

struct AudioVaeConfig {
  int version = 1;  // 1: AudioVAE (voxcpm), 2: AudioVAE V2 (voxcpm2)
  int64_t encoder_dim = 128;
  std::vector<int64_t> encoder_rates = {2, 5, 8, 8};
  int64_t latent_dim = 64;
  int64_t decoder_dim = 1536;
  std::vector<int64_t> decoder_rates = {8, 8, 5, 2};
  bool depthwise = true;
  int64_t sample_rate = 16000;      // encoder input rate
  int64_t out_sample_rate = 16000;  // decoder output rate (V2: 48000)
  bool use_noise_block = false;
  std::vector<int64_t> sr_bin_boundaries;  // V2 only
  std::string cond_type = "scale_bias";
  int64_t cond_dim = 128;
  bool cond_out_layer = false;

  int64_t hop_length() const;         // encoder samples per latent frame
  int64_t decode_hop_length() const;  // decoder samples per latent frame
};

struct ModelConfig {
  std::string source;  // path of the config.json (for messages)
  Architecture architecture = Architecture::VoxCPM;
  TransformerConfig lm;
  int64_t patch_size = 2, feat_dim = 64;
  int64_t residual_lm_num_layers = 6;
  bool residual_lm_no_rope = false;
  int64_t scalar_quantization_latent_dim = 256;
  double scalar_quantization_scale = 9;
  LocalModuleConfig encoder, dit;
  CfmConfig cfm;
  bool dit_mean_mode = false;
  AudioVaeConfig audio_vae;
  int64_t max_length = 4096;
  std::string device = "cuda", dtype = "bfloat16";

  // Derived configs of the four transformer instances (spec §3.1 table).
  TransformerConfig base_lm() const;
  TransformerConfig residual_lm() const;
  TransformerConfig encoder_lm() const;
  TransformerConfig dit_lm() const;

  bool is_v2() const { return architecture == Architecture::VoxCPM2; }
  // Audio samples produced per generated patch at the output rate.
  int64_t samples_per_patch() const { return patch_size * audio_vae.decode_hop_length(); }
  int64_t sample_rate() const { return audio_vae.out_sample_rate; }

  // Throws voxcpm::Error naming the file and the key on any missing or ill-typed key, and on values
  // outside config_limits.
  static ModelConfig load(const std::string& path);
  static ModelConfig parse(const std::string& json_text, const std::string& source);
};

}  // namespace voxcpm

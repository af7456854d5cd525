#include "voxcpm/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "voxcpm/error.h"

namespace voxcpm {
namespace {

using json = nlohmann::json;
namespace L = config_limits;

// Reads keys of one JSON object; every error names the file and the dotted key path.
class Reader {
 public:
  Reader(const json& obj, std::string source, std::string path)
      : obj_(obj), source_(std::move(source)), path_(std::move(path)) {
    if (!obj_.is_object()) fail("", "is not a JSON object");
  }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error(source_ + ": key '" + path_ + key + "' " + what);
  }
  bool has(const std::string& key) const { return obj_.contains(key) && !obj_.at(key).is_null(); }
  Reader child(const std::string& key) const {
    if (!has(key)) fail(key, "is missing");
    return Reader(obj_.at(key), source_, path_ + key + ".");
  }

  int64_t integer(const std::string& key) const { return to_integer(key, need(key)); }
  int64_t integer(const std::string& key, int64_t def) const { return has(key) ? integer(key) : def; }
  // A size: 1..max. The maxima (config_limits, config.h) keep a hostile config from making us allocate.
  int64_t positive(const std::string& key, int64_t max) const {
    int64_t v = integer(key);
    if (v <= 0) fail(key, "must be positive, got " + std::to_string(v));
    if (v > max) fail(key, "is " + std::to_string(v) + ", over the sanity limit of " + std::to_string(max));
    return v;
  }
  int64_t positive(const std::string& key, int64_t def, int64_t max) const {
    return has(key) ? positive(key, max) : def;
  }
  double number(const std::string& key) const {
    const json& v = need(key);
    if (!v.is_number()) fail(key, "must be a number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) fail(key, "must be a finite number");
    return d;
  }
  double number(const std::string& key, double def) const { return has(key) ? number(key) : def; }
  bool boolean(const std::string& key, bool def) const {
    if (!has(key)) return def;
    const json& v = obj_.at(key);
    if (!v.is_boolean()) fail(key, "must be true or false");
    return v.get<bool>();
  }
  std::string string(const std::string& key, const std::string& def) const {
    if (!has(key)) return def;
    const json& v = obj_.at(key);
    if (!v.is_string()) fail(key, "must be a string");
    return v.get<std::string>();
  }
  std::vector<double> numbers(const std::string& key, size_t max_count) const {
    const json& v = need(key);
    if (!v.is_array()) fail(key, "must be a list of numbers");
    if (v.size() > max_count)
      fail(key, "has " + std::to_string(v.size()) + " entries, over the sanity limit of " + std::to_string(max_count));
    std::vector<double> out;
    for (const json& e : v) {
      if (!e.is_number() || !std::isfinite(e.get<double>())) fail(key, "must be a list of finite numbers");
      out.push_back(e.get<double>());
    }
    return out;
  }
  std::vector<int64_t> positives(const std::string& key, std::vector<int64_t> def, size_t max_count,
                                 int64_t max) const {
    if (!has(key)) return def;
    const json& v = need(key);
    if (!v.is_array()) fail(key, "must be a list of positive integers");
    if (v.size() > max_count)
      fail(key, "has " + std::to_string(v.size()) + " entries, over the sanity limit of " + std::to_string(max_count));
    std::vector<int64_t> out;
    for (const json& e : v) {
      const int64_t i = to_integer(key, e);
      if (i <= 0 || i > max)
        fail(key, "must be a list of integers in 1.." + std::to_string(max) + ", got " + std::to_string(i));
      out.push_back(i);
    }
    if (out.empty()) fail(key, "must not be empty");
    return out;
  }
  std::optional<int64_t> optional_positive(const std::string& key, int64_t max) const {
    if (!has(key)) return std::nullopt;
    return positive(key, max);
  }

 private:
  // Integers as JSON writes them, also 2.0; never a cast of an out-of-range double (undefined).
  int64_t to_integer(const std::string& key, const json& v) const {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) fail(key, "is out of range");
      return static_cast<int64_t>(v.get<uint64_t>());
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (!std::isfinite(d) || std::fabs(d) > 9007199254740992.0) fail(key, "is out of range");  // 2^53
      if (d == std::trunc(d)) return static_cast<int64_t>(d);
    }
    fail(key, "must be an integer");
  }
  const json& need(const std::string& key) const {
    if (!has(key)) fail(key, "is missing");
    return obj_.at(key);
  }
  const json& obj_;
  std::string source_, path_;
};

TransformerConfig parse_lm(const Reader& r) {
  TransformerConfig c;
  c.bos_token_id = r.integer("bos_token_id");
  c.eos_token_id = r.integer("eos_token_id");
  c.hidden_size = r.positive("hidden_size", L::kWidth);
  c.intermediate_size = r.positive("intermediate_size", L::kFfn);
  c.max_position_embeddings = r.positive("max_position_embeddings", L::kPositions);
  c.num_attention_heads = r.positive("num_attention_heads", L::kHeads);
  c.num_hidden_layers = r.positive("num_hidden_layers", L::kLayers);
  c.num_key_value_heads = r.positive("num_key_value_heads", L::kHeads);
  c.rms_norm_eps = r.number("rms_norm_eps");
  if (c.rms_norm_eps < 0) r.fail("rms_norm_eps", "must not be negative");
  c.vocab_size = r.positive("vocab_size", L::kVocab);
  c.use_mup = r.boolean("use_mup", true);
  c.scale_emb = r.number("scale_emb");
  c.dim_model_base = r.number("dim_model_base");
  c.scale_depth = r.number("scale_depth");
  c.rope_theta = r.number("rope_theta");
  if (c.rope_theta <= 0) r.fail("rope_theta", "must be positive");
  c.kv_channels = r.optional_positive("kv_channels", L::kHeadDim);
  c.no_rope = r.boolean("no_rope", false);
  Reader rs = r.child("rope_scaling");
  c.rope_scaling.type = rs.string("type", "");
  if (!rs.has("type")) rs.fail("type", "is missing");
  c.rope_scaling.long_factor = rs.numbers("long_factor", L::kListEntries);
  c.rope_scaling.short_factor = rs.numbers("short_factor", L::kListEntries);
  for (const char* key : {"long_factor", "short_factor"})
    for (double f : rs.numbers(key, L::kListEntries))
      if (f <= 0) rs.fail(key, "must be a list of positive numbers");
  c.rope_scaling.original_max_position_embeddings = rs.positive("original_max_position_embeddings", L::kPositions);

  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", "must divide num_attention_heads");
  if (!c.kv_channels && c.hidden_size % c.num_attention_heads != 0)
    r.fail("hidden_size", "must be a multiple of num_attention_heads (or set kv_channels)");
  if (c.head_dim() % 2 != 0) r.fail("kv_channels", "head dimension must be even for RoPE");
  if (c.head_dim() > L::kHeadDim)
    r.fail("hidden_size", "gives a head dimension over the sanity limit of " + std::to_string(L::kHeadDim));
  // Each transformer builds RoPE tables of max_position_embeddings x head_dim from the config alone.
  if (c.max_position_embeddings * c.head_dim() > L::kRopeElements)
    r.fail("max_position_embeddings", "x head dimension (" + std::to_string(c.max_position_embeddings) + " x " +
                                          std::to_string(c.head_dim()) + ") is over the sanity limit of " +
                                          std::to_string(L::kRopeElements) + " RoPE table entries");
  const size_t half = static_cast<size_t>(c.head_dim() / 2);
  if (c.rope_scaling.short_factor.size() != half)
    rs.fail("short_factor", "must have head_dim/2 = " + std::to_string(half) + " entries");
  if (c.rope_scaling.long_factor.size() != half)
    rs.fail("long_factor", "must have head_dim/2 = " + std::to_string(half) + " entries");
  return c;
}

LocalModuleConfig parse_local(const Reader& r) {
  LocalModuleConfig c;
  c.hidden_dim = r.positive("hidden_dim", c.hidden_dim, L::kWidth);
  c.ffn_dim = r.positive("ffn_dim", c.ffn_dim, L::kFfn);
  c.num_heads = r.positive("num_heads", c.num_heads, L::kHeads);
  c.num_layers = r.positive("num_layers", c.num_layers, L::kLayers);
  c.kv_channels = r.optional_positive("kv_channels", L::kHeadDim);
  return c;
}

AudioVaeConfig parse_vae(const Reader* r, int version) {
  AudioVaeConfig c;
  c.version = version;
  if (version == 2) {
    c.decoder_dim = 2048;
    c.decoder_rates = {8, 6, 5, 2, 2, 2};
    c.out_sample_rate = 48000;
    c.sr_bin_boundaries = {20000, 30000, 40000};
  }
  if (!r) return c;
  c.encoder_dim = r->positive("encoder_dim", c.encoder_dim, L::kWidth);
  c.encoder_rates = r->positives("encoder_rates", c.encoder_rates, L::kRates, L::kRateFactor);
  c.latent_dim = r->positive("latent_dim", c.latent_dim, L::kFeat);
  c.decoder_dim = r->positive("decoder_dim", c.decoder_dim, L::kWidth);
  c.decoder_rates = r->positives("decoder_rates", c.decoder_rates, L::kRates, L::kRateFactor);
  for (const char* key : {"encoder_rates", "decoder_rates"}) {
    int64_t hop = 1;  // stays below 2^16 * 2^10 before each check: no overflow
    for (int64_t f : key[0] == 'e' ? c.encoder_rates : c.decoder_rates)
      if ((hop *= f) > L::kHop) r->fail(key, "multiply to over the sanity limit of " + std::to_string(L::kHop));
  }
  c.depthwise = r->boolean("depthwise", c.depthwise);
  c.sample_rate = r->positive("sample_rate", c.sample_rate, L::kRate);
  c.use_noise_block = r->boolean("use_noise_block", false);
  if (c.use_noise_block) r->fail("use_noise_block", "true is not supported (no published model uses it)");
  if (version == 2) {
    c.out_sample_rate = r->positive("out_sample_rate", c.out_sample_rate, L::kRate);
    c.sr_bin_boundaries = r->positives("sr_bin_boundaries", c.sr_bin_boundaries, L::kRates, L::kRate);
    c.cond_type = r->string("cond_type", c.cond_type);
    if (c.cond_type != "scale_bias") r->fail("cond_type", "'" + c.cond_type + "' is not supported (only scale_bias)");
    c.cond_dim = r->positive("cond_dim", c.cond_dim, L::kWidth);
    c.cond_out_layer = r->boolean("cond_out_layer", c.cond_out_layer);
    if (c.cond_out_layer) r->fail("cond_out_layer", "true is not supported");
  } else {
    c.out_sample_rate = c.sample_rate;
  }
  if (c.decoder_dim % (int64_t{1} << c.decoder_rates.size()) != 0)
    r->fail("decoder_dim", "must be divisible by 2^len(decoder_rates)");
  return c;
}

}  // namespace

int64_t AudioVaeConfig::hop_length() const {
  int64_t h = 1;
  for (int64_t r : encoder_rates) h *= r;
  return h;
}

int64_t AudioVaeConfig::decode_hop_length() const {
  int64_t h = 1;
  for (int64_t r : decoder_rates) h *= r;
  return h;
}

ModelConfig ModelConfig::parse(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  Reader r(j, source, "");
  ModelConfig c;
  c.source = source;

  std::string arch = r.string("architecture", "voxcpm");
  std::transform(arch.begin(), arch.end(), arch.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (arch == "voxcpm") {
    c.architecture = Architecture::VoxCPM;
  } else if (arch == "voxcpm2") {
    c.architecture = Architecture::VoxCPM2;
  } else {
    r.fail("architecture", "'" + arch + "' is unknown (expected 'voxcpm' or 'voxcpm2')");
  }
  const bool v2 = c.is_v2();
  if (v2) {  // VoxCPM2 class defaults
    c.patch_size = 4;
    c.residual_lm_num_layers = 8;
    c.scalar_quantization_latent_dim = 512;
    c.max_length = 8192;
  }

  c.lm = parse_lm(r.child("lm_config"));
  c.patch_size = r.positive("patch_size", c.patch_size, L::kPatch);
  c.feat_dim = r.positive("feat_dim", c.feat_dim, L::kFeat);
  c.residual_lm_num_layers = r.positive("residual_lm_num_layers", c.residual_lm_num_layers, L::kLayers);
  c.residual_lm_no_rope = v2 ? r.boolean("residual_lm_no_rope", false) : false;
  c.scalar_quantization_latent_dim =
      r.positive("scalar_quantization_latent_dim", c.scalar_quantization_latent_dim, L::kWidth);
  c.scalar_quantization_scale = static_cast<double>(r.positive("scalar_quantization_scale", 9, L::kWidth));
  c.encoder = parse_local(r.child("encoder_config"));
  Reader dit = r.child("dit_config");
  c.dit = parse_local(dit);
  Reader cfm = dit.child("cfm_config");
  c.cfm.sigma_min = cfm.number("sigma_min", c.cfm.sigma_min);
  c.cfm.solver = cfm.string("solver", c.cfm.solver);
  if (c.cfm.solver != "euler") cfm.fail("solver", "'" + c.cfm.solver + "' is not supported (only euler exists)");
  c.cfm.t_scheduler = cfm.string("t_scheduler", c.cfm.t_scheduler);
  c.cfm.training_cfg_rate = cfm.number("training_cfg_rate", c.cfm.training_cfg_rate);
  c.cfm.inference_cfg_rate = cfm.number("inference_cfg_rate", c.cfm.inference_cfg_rate);
  c.cfm.reg_loss_type = cfm.string("reg_loss_type", c.cfm.reg_loss_type);
  // v1 reads a top-level dit_mean_mode, v2 the pydantic field dit_config.dit_mean_mode (the real
  // file's dit_config.mean_mode is ignored by the official code, spec §6 note 7).
  c.dit_mean_mode = v2 ? dit.boolean("dit_mean_mode", false) : r.boolean("dit_mean_mode", false);
  if (r.has("audio_vae_config")) {
    Reader vae = r.child("audio_vae_config");
    c.audio_vae = parse_vae(&vae, v2 ? 2 : 1);
  } else {
    c.audio_vae = parse_vae(nullptr, v2 ? 2 : 1);
  }
  c.max_length = r.positive("max_length", c.max_length, L::kPositions);
  c.device = r.string("device", c.device);
  c.dtype = r.string("dtype", c.dtype);

  if (c.audio_vae.latent_dim != c.feat_dim) r.fail("feat_dim", "must equal audio_vae_config.latent_dim");
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open model config (missing config.json?)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

TransformerConfig ModelConfig::base_lm() const { return lm; }

TransformerConfig ModelConfig::residual_lm() const {
  TransformerConfig c = lm;
  c.num_hidden_layers = residual_lm_num_layers;
  c.vocab_size = 0;
  if (is_v2()) c.no_rope = residual_lm_no_rope;
  return c;
}

static TransformerConfig local_lm(const TransformerConfig& lm, const LocalModuleConfig& m) {
  TransformerConfig c = lm;
  c.hidden_size = m.hidden_dim;
  c.intermediate_size = m.ffn_dim;
  c.num_attention_heads = m.num_heads;
  c.num_hidden_layers = m.num_layers;
  c.kv_channels = m.kv_channels;
  c.vocab_size = 0;
  return c;
}

TransformerConfig ModelConfig::encoder_lm() const { return local_lm(lm, encoder); }
TransformerConfig ModelConfig::dit_lm() const { return local_lm(lm, dit); }

}  // namespace voxcpm

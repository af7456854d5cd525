// AudioVAE against the official code's goldens on the three tiny models (golden-<v>/vae), the
// stateful decoder against the full decode, and the loader/input checks.
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/audio_vae.h"
#include "voxcpm/config.h"
#include "voxcpm/error.h"
#include "voxcpm/weights.h"

namespace voxcpm {
namespace {

using test::load_golden;
using test::max_abs_diff;
using test::tiny_model_dir;

AudioVaeConfig vae_config(const std::string& version) {
  return ModelConfig::load(tiny_model_dir(version) + "/config.json").audio_vae;
}

Weights vae_weights(const std::string& version) { return Weights::load(tiny_model_dir(version) + "/audiovae.pth"); }

AudioVAE load_vae(const std::string& version) {
  return AudioVAE(vae_weights(version), vae_config(version), at::kCPU);
}

int64_t patch_size(const std::string& version) {
  return ModelConfig::load(tiny_model_dir(version) + "/config.json").patch_size;
}

void report(const std::string& what, double diff) { std::cout << "[ max diff ] " << what << ": " << diff << "\n"; }

// Runs `message_check` on the Error thrown by `f`; fails if nothing or something else is thrown.
void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no voxcpm::Error thrown (expected one mentioning '" << needle << "')";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

// Decodes `z` through a fresh stateful decoder in chunks of the given sizes (cycled).
at::Tensor decode_in_chunks(const AudioVAE& vae, const at::Tensor& z, const std::vector<int64_t>& sizes) {
  auto state = vae.new_decoder_state();
  std::vector<at::Tensor> out;
  int64_t pos = 0;
  for (size_t i = 0; pos < z.size(2); ++i) {
    const int64_t n = std::min(sizes[i % sizes.size()], z.size(2) - pos);
    at::Tensor y = vae.decode_step(*state, z.narrow(2, pos, n));
    EXPECT_EQ(y.sizes(), at::IntArrayRef({1, 1, n * vae.decode_hop()}));
    out.push_back(y);
    pos += n;
  }
  return at::cat(out, 2);
}

class AudioVaeGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(AudioVaeGolden, RatesAndHops) {
  const std::string v = GetParam();
  AudioVAE vae = load_vae(v);
  auto g = load_golden(v, "vae");
  EXPECT_EQ(vae.encode_hop(), g.meta.at("chunk_size(encoder hop)").get<int64_t>());
  EXPECT_EQ(vae.decode_hop(), g.meta.at("decode_chunk_size(decoder hop)").get<int64_t>());
  EXPECT_EQ(vae.sample_rate(), g.meta.at("encode_sample_rate").get<int64_t>());
  EXPECT_EQ(vae.out_sample_rate(), g.meta.at("output_sample_rate").get<int64_t>());
}

TEST_P(AudioVaeGolden, Decode) {
  const std::string v = GetParam();
  AudioVAE vae = load_vae(v);
  auto g = load_golden(v, "vae");
  at::Tensor audio = vae.decode(g["decode.z"]);
  EXPECT_EQ(audio.scalar_type(), at::kFloat);
  EXPECT_CLOSE(audio, g["decode.audio"], 1e-4);
  report(v + " decode.audio", max_abs_diff(audio, g["decode.audio"]));
  if (v == "v2") {
    EXPECT_CLOSE(vae.decode(g["decode.z"], 48000), g["decode.audio"], 1e-4);
    for (const char* sr : {"16000", "24000"}) {
      const std::string name = std::string("decode_sr") + sr + ".audio";
      at::Tensor a = vae.decode(g["decode.z"], std::stoll(sr));
      EXPECT_CLOSE(a, g[name], 1e-4);
      report(v + " " + name, max_abs_diff(a, g[name]));
    }
  } else {
    expect_error([&] { vae.decode(g["decode.z"], 16000); }, "sr_cond");
  }
}

TEST_P(AudioVaeGolden, Encode) {
  const std::string v = GetParam();
  AudioVAE vae = load_vae(v);
  auto g = load_golden(v, "vae");
  const at::Tensor& wav = g["encode.wav"];  // [1, n], n not a multiple of the hop
  ASSERT_NE(wav.size(1) % vae.encode_hop(), 0);
  at::Tensor mu = vae.encode(wav.unsqueeze(1));
  EXPECT_CLOSE(mu, g["encode.mu"], 1e-4);
  report(v + " encode.mu", max_abs_diff(mu, g["encode.mu"]));
}

TEST_P(AudioVaeGolden, BatchRowsAreIndependent) {
  const std::string v = GetParam();
  AudioVAE vae = load_vae(v);
  auto g = load_golden(v, "vae");
  at::Tensor z = g["decode.z"];
  at::Tensor both = vae.decode(at::cat({z, z.flip(2)}, 0));
  EXPECT_CLOSE(both.narrow(0, 0, 1), g["decode.audio"], 1e-4);
  EXPECT_CLOSE(both.narrow(0, 1, 1), vae.decode(z.flip(2)), 1e-5);
}

// The stateful decoder reproduces the full decode for any chunking, also past the receptive
// field (about 20 frames), where the history is entirely made of earlier chunks.
TEST_P(AudioVaeGolden, StreamingEqualsFullDecode) {
  const std::string v = GetParam();
  AudioVAE vae = load_vae(v);
  at::Tensor z = at::randn({1, vae.latent_dim(), 29}, at::make_generator<at::CPUGeneratorImpl>(42));
  at::Tensor full = vae.decode(z);
  const int64_t p = patch_size(v);
  for (const std::vector<int64_t>& sizes :
       std::vector<std::vector<int64_t>>{{1}, {2}, {4}, {p}, {3, 1, 5, 2}, {29}}) {
    at::Tensor streamed = decode_in_chunks(vae, z, sizes);
    std::string name = v + " streaming chunks {";
    for (int64_t s : sizes) name += std::to_string(s) + ",";
    name.back() = '}';
    EXPECT_CLOSE(streamed, full, 1e-5);
    report(name + " vs full decode", max_abs_diff(streamed, full));
  }
}

TEST_P(AudioVaeGolden, StateIsPerRequest) {
  const std::string v = GetParam();
  AudioVAE vae = load_vae(v);
  auto g = load_golden(v, "vae");
  const at::Tensor& z = g["decode.z"];
  // Two interleaved requests do not disturb each other.
  auto a = vae.new_decoder_state(), b = vae.new_decoder_state();
  at::Tensor other = at::randn({1, vae.latent_dim(), 2}, at::make_generator<at::CPUGeneratorImpl>(7));
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < z.size(2); ++i) {
    out.push_back(vae.decode_step(*a, z.narrow(2, i, 1)));
    vae.decode_step(*b, other);
  }
  EXPECT_CLOSE(at::cat(out, 2), g["decode.audio"], 1e-4);
  // Zero frames: no samples, no state change.
  EXPECT_EQ(vae.decode_step(*a, z.narrow(2, 0, 0)).size(2), 0);
}

TEST_P(AudioVaeGolden, StateBytes) {
  const std::string v = GetParam();
  AudioVaeConfig cfg = vae_config(v);
  AudioVAE vae(vae_weights(v), cfg, at::kCPU);
  // Spec §8.3: channels x history of every decoder conv that looks back (k7: 6d, convT: 1 frame).
  int64_t floats = cfg.latent_dim * 6;  // first k7 conv (depthwise or not)
  int64_t c = cfg.decoder_dim;
  for (size_t i = 0; i < cfg.decoder_rates.size(); ++i, c /= 2) floats += c + (c / 2) * (6 + 18 + 54);
  floats += c * 6;
  EXPECT_EQ(vae.decoder_state_bytes(*vae.new_decoder_state()), static_cast<size_t>(floats) * sizeof(float));
}

TEST_P(AudioVaeGolden, BadInput) {
  const std::string v = GetParam();
  AudioVAE vae = load_vae(v);
  const int64_t lat = vae.latent_dim();
  expect_error([&] { vae.encode(at::zeros({1000})); }, "[B, 1, N]");
  expect_error([&] { vae.encode(at::zeros({1, 1000})); }, "[B, 1, N]");
  expect_error([&] { vae.encode(at::zeros({1, 2, 1000})); }, "[B, 1, N]");
  expect_error([&] { vae.encode(at::zeros({1, 1, 0})); }, "empty");
  expect_error([&] { vae.encode(at::zeros({1, 1, 100}, at::kLong)); }, "floating");
  expect_error([&] { vae.encode(at::Tensor()); }, "undefined");
  expect_error([&] { vae.decode(at::zeros({lat, 5})); }, "latents");
  expect_error([&] { vae.decode(at::zeros({1, lat + 1, 5})); }, "latents");
  expect_error([&] { vae.decode(at::zeros({1, 1, lat, 5})); }, "latents");
  auto s = vae.new_decoder_state();
  expect_error([&] { vae.decode_step(*s, at::zeros({2, lat, 1})); }, "[1, latent, f]");
  expect_error([&] { vae.decode_step(*s, at::zeros({lat, 1})); }, "latents");
  // A state of another model is rejected.
  const std::string other = v == "v2" ? "v1" : "v2";
  auto foreign = load_vae(other).new_decoder_state();
  expect_error([&] { vae.decode_step(*foreign, at::zeros({1, lat, 1})); }, "DecoderState");
}

TEST_P(AudioVaeGolden, MissingOrMisshapenTensor) {
  const std::string v = GetParam();
  const AudioVaeConfig cfg = vae_config(v);
  const Weights w = vae_weights(v);
  std::vector<std::string> names = {"encoder.block.0.bias", "encoder.block.1.block.4.weight_v",
                                    "encoder.fc_mu.weight_g", "decoder.model.1.weight_v",
                                    "decoder.model.2.block.1.weight_g", "decoder.model.3.block.4.block.0.alpha"};
  names.push_back("encoder.fc_logvar.weight_v");  // unused, but part of the checkpoint
  if (v == "v2") {
    names.push_back("decoder.sr_cond_model.4.bias_embed.weight");
    names.push_back("decoder.sr_bin_boundaries");
  }
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(w.contains(name));
    TensorMap missing = w.tensors();
    missing.erase(name);
    expect_error([&] { AudioVAE(Weights(missing, "vae.pth"), cfg, at::kCPU); }, "'" + name + "' is missing");
    TensorMap misshapen = w.tensors();
    misshapen[name] = at::cat({misshapen[name], misshapen[name]}, 0);
    expect_error([&] { AudioVAE(Weights(misshapen, "vae.pth"), cfg, at::kCPU); }, "'" + name + "' has shape");
  }
}

TEST(AudioVae, BadConfig) {
  const Weights w = vae_weights("v1");
  AudioVaeConfig cfg = vae_config("v1");
  cfg.version = 3;
  expect_error([&] { AudioVAE(w, cfg, at::kCPU); }, "version");
  cfg = vae_config("v1");
  cfg.decoder_dim = 63;
  expect_error([&] { AudioVAE(w, cfg, at::kCPU); }, "decoder_dim");
  cfg = vae_config("v1");
  cfg.encoder_rates.clear();
  expect_error([&] { AudioVAE(w, cfg, at::kCPU); }, "encoder_rates");
  // The V1 checkpoint does not fit the V2 config (wider decoder, no SR conditioning).
  expect_error([&] { AudioVAE(w, vae_config("v2"), at::kCPU); }, "audiovae.pth: tensor 'decoder.");
}

INSTANTIATE_TEST_SUITE_P(Tiny, AudioVaeGolden, ::testing::Values("v1", "v1.5", "v2"),
                         [](const auto& info) { return info.param == "v1.5" ? std::string("v1_5") : info.param; });

// VoxCPM2 streams one patch at a time through the stateful decoder (audio_vae.streaming_decode()).
TEST(AudioVaeV2, StreamingDecodeGolden) {
  AudioVAE vae = load_vae("v2");
  auto g = load_golden("v2", "vae");
  const at::Tensor& z = g["decode.z"];
  const at::Tensor& chunks = g["streaming_decode.chunks"];  // [3, P*1920]
  const int64_t p = patch_size("v2");
  ASSERT_EQ(chunks.size(0) * p, z.size(2));
  auto state = vae.new_decoder_state();
  for (int64_t i = 0; i < chunks.size(0); ++i) {
    at::Tensor y = vae.decode_step(*state, z.narrow(2, i * p, p));
    EXPECT_CLOSE(y.reshape({-1}), chunks[i], 1e-4);
    report("v2 streaming_decode.chunks[" + std::to_string(i) + "]", max_abs_diff(y.reshape({-1}), chunks[i]));
  }
}

// The file's sr_bin_boundaries buffer is what the official loader uses; shape and dtype are checked.
TEST(AudioVaeV2, SrBoundariesFromCheckpoint) {
  const AudioVaeConfig cfg = vae_config("v2");
  TensorMap t = vae_weights("v2").tensors();
  auto g = load_golden("v2", "vae");
  t["decoder.sr_bin_boundaries"] = at::tensor({10000, 20000, 30000}, at::kInt);
  AudioVAE shifted(Weights(t, "vae.pth"), cfg, at::kCPU);
  // 16000 now falls in bucket 1, which 24000 selects with the shipped boundaries.
  EXPECT_CLOSE(shifted.decode(g["decode.z"], 16000), g["decode_sr24000.audio"], 1e-4);
  t["decoder.sr_bin_boundaries"] = at::tensor({10000, 20000}, at::kInt);
  expect_error([&] { AudioVAE(Weights(t, "vae.pth"), cfg, at::kCPU); }, "'decoder.sr_bin_boundaries' has shape");
  t["decoder.sr_bin_boundaries"] = at::tensor({10000.f, 20000.f, 30000.f});
  expect_error([&] { AudioVAE(Weights(t, "vae.pth"), cfg, at::kCPU); }, "integer dtype");
  expect_error([&] { shifted.decode(g["decode.z"], 0); }, "sr_cond");
}

}  // namespace
}  // namespace voxcpm

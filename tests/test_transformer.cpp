// MiniCPM4 transformer against the official code (golden-<v>/modules): base LM prefill hidden
// states, post-RoPE K/V, one cached decode step, RoPE tables; residual LM (v2 without RoPE);
// plus config validation and bad input.
#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/config.h"
#include "voxcpm/error.h"
#include "voxcpm/transformer.h"
#include "voxcpm/weights.h"

using namespace voxcpm;

namespace {

constexpr double kTol = 1e-4;  // fp32 parity tolerance

using test::expect_error_containing;
using Tiny = test::TinyParts;
Tiny load_tiny(const std::string& version) { return test::load_tiny_parts(version); }

class TransformerGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TransformerGolden, BaseLmPrefillStepAndRope) {
  const std::string v = GetParam();
  const Tiny m = load_tiny(v);
  const test::Golden g = test::load_golden(v, "modules");
  const Transformer lm(m.weights, "base_lm", m.cfg.base_lm(), ModuleOptions{});

  const at::Tensor cos = lm.rope_cos().narrow(0, 0, 16), sin = lm.rope_sin().narrow(0, 0, 16);
  EXPECT_CLOSE(cos, g["base_lm.rope.cos[:16]"], 1e-6);
  EXPECT_CLOSE(sin, g["base_lm.rope.sin[:16]"], 1e-6);
  std::cout << v << " rope cos/sin max diff " << test::max_abs_diff(cos, g["base_lm.rope.cos[:16]"]) << " / "
            << test::max_abs_diff(sin, g["base_lm.rope.sin[:16]"]) << "\n";

  EXPECT_CLOSE(lm.embed(g["base_lm.input_ids"]), g["base_lm.inputs_embeds"], 0.0);
  EXPECT_CLOSE(lm.embed(at::tensor({int64_t{431}}).view({1, 1})).view({1, -1}), g["base_lm.step.input_embeds"], 0.0);

  KVCache cache = lm.new_cache(1, m.cfg.max_length);
  const at::Tensor hidden = lm.forward(g["base_lm.inputs_embeds"], /*causal=*/true, &cache);
  EXPECT_EQ(cache.length, 6);
  EXPECT_CLOSE(hidden, g["base_lm.prefill.hidden"], kTol);
  double kv_diff = 0;
  for (int64_t i = 0; i < m.cfg.lm.num_hidden_layers; ++i) {
    const std::string p = "base_lm.prefill.layer" + std::to_string(i);
    const at::Tensor k = cache.key[i].narrow(2, 0, 6), val = cache.value[i].narrow(2, 0, 6);
    EXPECT_CLOSE(k, g[p + ".key"], kTol);
    EXPECT_CLOSE(val, g[p + ".value"], kTol);
    kv_diff = std::max({kv_diff, test::max_abs_diff(k, g[p + ".key"]), test::max_abs_diff(val, g[p + ".value"])});
  }
  // Positions past the prefill stay zero.
  EXPECT_EQ(cache.key.narrow(3, 6, 10).abs().max().item<float>(), 0.0f);

  const at::Tensor step = lm.forward_step(g["base_lm.step.input_embeds"], cache);
  EXPECT_EQ(cache.length, 7);
  EXPECT_CLOSE(step, g["base_lm.step.hidden"], kTol);
  std::cout << v << " base_lm prefill hidden " << test::max_abs_diff(hidden, g["base_lm.prefill.hidden"])
            << ", K/V " << kv_diff << ", step " << test::max_abs_diff(step, g["base_lm.step.hidden"]) << "\n";

  // The step equals the last position of a full causal pass over the 7 tokens.
  const at::Tensor full = lm.forward(at::cat({g["base_lm.inputs_embeds"], g["base_lm.step.input_embeds"].unsqueeze(1)}, 1), true);
  EXPECT_CLOSE(full.select(1, 6), step, 1e-5);

  // Reusing the cache for a shorter prefill: later slots are zero again, decoding continues.
  const at::Tensor embeds = g["base_lm.inputs_embeds"];
  lm.forward(embeds.narrow(1, 0, 3), true, &cache);
  EXPECT_EQ(cache.length, 3);
  EXPECT_EQ(cache.key.narrow(3, 3, 8).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(cache.value.narrow(3, 3, 8).abs().max().item<float>(), 0.0f);
  EXPECT_CLOSE(lm.forward_step(embeds.select(1, 3), cache), g["base_lm.prefill.hidden"].select(1, 3), 1e-5);
}

TEST_P(TransformerGolden, ResidualLmPrefillAndStep) {
  const std::string v = GetParam();
  const Tiny m = load_tiny(v);
  const test::Golden g = test::load_golden(v, "modules");
  const TransformerConfig rc = m.cfg.residual_lm();
  EXPECT_EQ(rc.no_rope, v == "v2");  // v2's residual LM has no RoPE at all
  const Transformer lm(m.weights, "residual_lm", rc, ModuleOptions{});
  EXPECT_EQ(lm.rope_cos().defined(), !rc.no_rope);
  expect_error_containing([&] { lm.embed(at::zeros({1, 1}, at::kLong)); }, "no token embedding");

  KVCache cache = lm.new_cache(1, m.cfg.max_length);
  const at::Tensor hidden = lm.forward(g["residual_lm.inputs_embeds"], true, &cache);
  EXPECT_CLOSE(hidden, g["residual_lm.prefill.hidden"], kTol);
  const at::Tensor step = lm.forward_step(g["residual_lm.step.input_embeds"], cache);
  EXPECT_CLOSE(step, g["residual_lm.step.hidden"], kTol);
  std::cout << v << " residual_lm prefill " << test::max_abs_diff(hidden, g["residual_lm.prefill.hidden"])
            << ", step " << test::max_abs_diff(step, g["residual_lm.step.hidden"]) << "\n";
}

// bf16 module: RoPE tables are the float32 tables rounded to bf16; forward runs in bf16 and stays
// close to the float32 reference (bf16 rounding noise only).
TEST_P(TransformerGolden, Bf16TablesAndForward) {
  const std::string v = GetParam();
  const Tiny m = load_tiny(v);
  const test::Golden g = test::load_golden(v, "modules");
  const Transformer lm(m.weights, "base_lm", m.cfg.base_lm(), ModuleOptions{at::kBFloat16, at::kCPU});
  ASSERT_EQ(lm.rope_cos().scalar_type(), at::kBFloat16);
  EXPECT_CLOSE(lm.rope_cos().narrow(0, 0, 16), g["base_lm.rope.cos[:16]"].to(at::kBFloat16), 0.0);
  EXPECT_CLOSE(lm.rope_sin().narrow(0, 0, 16), g["base_lm.rope.sin[:16]"].to(at::kBFloat16), 0.0);

  KVCache cache = lm.new_cache(1, 16);
  EXPECT_EQ(cache.key.scalar_type(), at::kBFloat16);
  const at::Tensor hidden = lm.forward(g["base_lm.inputs_embeds"], true, &cache);
  EXPECT_EQ(hidden.scalar_type(), at::kBFloat16);
  const at::Tensor step = lm.forward_step(g["base_lm.step.input_embeds"], cache);
  const double dh = test::max_abs_diff(hidden, g["base_lm.prefill.hidden"]);
  const double ds = test::max_abs_diff(step, g["base_lm.step.hidden"]);
  std::cout << v << " bf16 base_lm prefill diff " << dh << ", step diff " << ds << "\n";
  EXPECT_LE(dh, 0.1);
  EXPECT_LE(ds, 0.1);
}

INSTANTIATE_TEST_SUITE_P(Versions, TransformerGolden, ::testing::Values("v1", "v1.5", "v2"),
                         [](const auto& info) { return info.param == "v1.5" ? std::string("v1_5") : info.param; });

TEST(Transformer, StepOnFullCacheThrows) {
  const Tiny m = load_tiny("v2");
  const test::Golden g = test::load_golden("v2", "modules");
  const Transformer lm(m.weights, "base_lm", m.cfg.base_lm(), ModuleOptions{});
  KVCache cache = lm.new_cache(1, 7);
  lm.forward(g["base_lm.inputs_embeds"], true, &cache);
  lm.forward_step(g["base_lm.step.input_embeds"], cache);  // position 6: the last slot
  EXPECT_EQ(cache.length, 7);
  expect_error_containing([&] { lm.forward_step(g["base_lm.step.input_embeds"], cache); }, "KV cache is full");
  EXPECT_EQ(cache.length, 7);

  KVCache small = lm.new_cache(1, 4);
  expect_error_containing([&] { lm.forward(g["base_lm.inputs_embeds"], true, &small); }, "does not fit the KV cache");
  KVCache other_batch = lm.new_cache(2, 16);
  expect_error_containing([&] { lm.forward_step(g["base_lm.step.input_embeds"], other_batch); },
                          "KV cache does not match");
}

TEST(Transformer, BadInputThrows) {
  const Tiny m = load_tiny("v2");
  const Transformer lm(m.weights, "base_lm", m.cfg.base_lm(), ModuleOptions{});
  expect_error_containing([&] { lm.forward(at::zeros({1, 3, 63}), true); }, "input must be [B, S, 64]");
  expect_error_containing([&] { lm.forward(at::zeros({3, 64}), true); }, "input must be");
  KVCache cache = lm.new_cache(1, 8);
  expect_error_containing([&] { lm.forward_step(at::zeros({1, 1, 64}), cache); }, "step input must be [B, 64]");
  expect_error_containing([&] { lm.embed(at::tensor({int64_t{512}})); }, "token id 512 is outside the vocabulary");
  expect_error_containing([&] { lm.embed(at::tensor({int64_t{-1}})); }, "token id -1");
  expect_error_containing([&] { lm.embed(at::zeros({2})); }, "integer tensor");
  expect_error_containing([&] { lm.new_cache(1, 0); }, "must be positive");
}

TEST(Transformer, WrongWeightShapeNamesTensor) {
  const Tiny m = load_tiny("v2");
  TensorMap t = m.weights.tensors();
  t["base_lm.layers.1.self_attn.k_proj.weight"] = at::zeros({16, 64}, at::kBFloat16);
  const Weights bad(t, "bad.safetensors");
  expect_error_containing([&] { (void)Transformer(bad, "base_lm", m.cfg.base_lm(), ModuleOptions{}); },
                          "'base_lm.layers.1.self_attn.k_proj.weight' has shape [16, 64], expected [32, 64]");
  t.erase("base_lm.norm.weight");
  t["base_lm.layers.1.self_attn.k_proj.weight"] = m.weights.tensors().at("base_lm.layers.1.self_attn.k_proj.weight");
  const Weights missing(t, "missing.safetensors");
  expect_error_containing([&] { (void)Transformer(missing, "base_lm", m.cfg.base_lm(), ModuleOptions{}); },
                          "'base_lm.norm.weight' is missing");
}

TEST(Transformer, InvalidConfigThrows) {
  const Tiny m = load_tiny("v1.5");
  TransformerConfig c = m.cfg.base_lm();
  c.num_key_value_heads = 3;  // 4 heads
  expect_error_containing([&] { (void)Transformer(m.weights, "base_lm", c, ModuleOptions{}); },
                          "num_attention_heads (4) is not divisible by num_key_value_heads (3)");
  c = m.cfg.base_lm();
  c.num_attention_heads = 6;  // 64 % 6 != 0, no kv_channels
  c.num_key_value_heads = 2;
  expect_error_containing([&] { (void)Transformer(m.weights, "base_lm", c, ModuleOptions{}); },
                          "hidden_size (64) is not divisible by num_attention_heads (6)");
  c = m.cfg.base_lm();
  c.rope_scaling.short_factor.pop_back();
  expect_error_containing([&] { (void)Transformer(m.weights, "base_lm", c, ModuleOptions{}); }, "short_factor");
  expect_error_containing([&] { (void)Transformer(m.weights, "base_lm", m.cfg.base_lm(), ModuleOptions{at::kLong, at::kCPU}); },
                          "floating point");
}

}  // namespace

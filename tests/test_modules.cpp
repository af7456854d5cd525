// LM-side modules against the official code (golden-<v>/modules): LocEnc (feat_encoder),
// enc_to_lm_proj, FSQ, stop head, one LocDiT estimator call; plus bad input.
#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/config.h"
#include "voxcpm/error.h"
#include <ATen/CPUGeneratorImpl.h>

#include "voxcpm/cfm.h"
#include "voxcpm/layers.h"
#include "voxcpm/locdit.h"
#include "voxcpm/locenc.h"
#include "voxcpm/transformer.h"
#include "voxcpm/weights.h"

using namespace voxcpm;

namespace {

constexpr double kTol = 1e-4;  // fp32 parity tolerance

using test::expect_error_containing;
using Tiny = test::TinyParts;
Tiny load_tiny(const std::string& version) { return test::load_tiny_parts(version); }

class ModulesGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ModulesGolden, FeatEncoderAndProjection) {
  const std::string v = GetParam();
  const Tiny m = load_tiny(v);
  const test::Golden g = test::load_golden(v, "modules");
  const ModuleOptions o;
  const LocEnc enc(m.weights, m.cfg, o);
  const Linear proj =
      Linear::load(m.weights, "enc_to_lm_proj", m.cfg.encoder.hidden_dim, m.cfg.lm.hidden_size, true, o);
  const at::Tensor out = enc(g["feat_encoder.input"]);
  EXPECT_CLOSE(out, g["feat_encoder.output"], kTol);
  const at::Tensor lm_in = proj(out);
  EXPECT_CLOSE(lm_in, g["enc_to_lm_proj.output"], kTol);
  std::cout << v << " feat_encoder " << test::max_abs_diff(out, g["feat_encoder.output"]) << ", enc_to_lm_proj "
            << test::max_abs_diff(lm_in, g["enc_to_lm_proj.output"]) << "\n";
}

TEST_P(ModulesGolden, FsqAndStopHead) {
  const std::string v = GetParam();
  const Tiny m = load_tiny(v);
  const test::Golden g = test::load_golden(v, "modules");
  const ScalarQuantizer fsq = ScalarQuantizer::load(m.weights, m.cfg, ModuleOptions{});
  const StopHead stop = StopHead::load(m.weights, m.cfg, ModuleOptions{});
  const at::Tensor q = fsq(g["fsq.input"]);
  EXPECT_CLOSE(q, g["fsq.output"], kTol);
  const at::Tensor logits = stop(g["fsq.input"]);
  EXPECT_CLOSE(logits, g["stop_head.logits_for_fsq_input"], kTol);
  EXPECT_TRUE(at::equal(logits.argmax(-1), g["stop_head.logits_for_fsq_input"].argmax(-1)));
  // The per-step decision (one row; a single loop on the packed CPU path) gives the same logits
  // and the reference's argmax for every row.
  const at::Tensor rows = g["fsq.input"].reshape({-1, g["fsq.input"].size(-1)});
  const at::Tensor want = g["stop_head.logits_for_fsq_input"].reshape({-1, 2});
  for (int64_t i = 0; i < rows.size(0); ++i) {
    at::Tensor row_logits;
    const bool stops = stop.stops(rows[i].unsqueeze(0), &row_logits);
    EXPECT_CLOSE(row_logits, want[i].unsqueeze(0), kTol);
    EXPECT_EQ(stops, want[i].argmax(-1).item<int64_t>() == 1) << "row " << i;
  }
  std::cout << v << " fsq " << test::max_abs_diff(q, g["fsq.output"]) << ", stop logits "
            << test::max_abs_diff(logits, g["stop_head.logits_for_fsq_input"]) << "\n";
}

TEST_P(ModulesGolden, EstimatorCall) {
  const std::string v = GetParam();
  const Tiny m = load_tiny(v);
  const test::Golden g = test::load_golden(v, "modules");
  const LocDiT dit(m.weights, m.cfg, ModuleOptions{});
  EXPECT_EQ(dit.mu_dim(), g.meta["estimator"]["mu_dim"].get<int64_t>());
  const at::Tensor out = dit(g["estimator.x"], g["estimator.mu"], g["estimator.t"], g["estimator.cond"], g["estimator.dt"]);
  EXPECT_CLOSE(out, g["estimator.out"], kTol);
  std::cout << v << " estimator " << test::max_abs_diff(out, g["estimator.out"]) << "\n";
}

INSTANTIATE_TEST_SUITE_P(Versions, ModulesGolden, ::testing::Values("v1", "v1.5", "v2"),
                         [](const auto& info) { return info.param == "v1.5" ? std::string("v1_5") : info.param; });

// bf16 model on the zero-shot case (e2e_zeroshot_bf16): every LM-side module in bf16, fed the
// official inputs of each stage (teacher forcing), against the official bf16 outputs.
class ModulesBf16 : public ::testing::TestWithParam<std::string> {};

TEST_P(ModulesBf16, ZeroShotStagesMatchOfficial) {
  const std::string v = GetParam();
  const Tiny m = load_tiny(v);
  const ModelConfig& c = m.cfg;
  const test::Golden g = test::load_golden(v, "e2e_zeroshot_bf16");
  const ModuleOptions o{at::kBFloat16, at::kCPU};
  const int64_t H = c.lm.hidden_size, Eh = c.encoder.hidden_dim, Dh = c.dit.hidden_dim;
  const Transformer base(m.weights, "base_lm", c.base_lm(), o), residual(m.weights, "residual_lm", c.residual_lm(), o);
  const LocEnc enc(m.weights, c, o);
  const LocDiT dit(m.weights, c, o);
  const UnifiedCFM cfm(dit, c, o);
  const ScalarQuantizer fsq = ScalarQuantizer::load(m.weights, c, o);
  const StopHead stop = StopHead::load(m.weights, c, o);
  const Linear enc_to_lm = Linear::load(m.weights, "enc_to_lm_proj", Eh, H, true, o);
  const Linear lm_to_dit = Linear::load(m.weights, "lm_to_dit_proj", H, Dh, true, o);
  const Linear res_to_dit = Linear::load(m.weights, "res_to_dit_proj", H, Dh, true, o);
  Linear fusion;
  if (c.is_v2()) fusion = Linear::load(m.weights, "fusion_concat_proj", 2 * H, H, true, o);
  const auto bf = [](const at::Tensor& t) { return t.to(at::kBFloat16); };
  std::map<std::string, double> diff;
  const auto check = [&](const std::string& what, const at::Tensor& ours, const at::Tensor& ref) {
    ASSERT_EQ(ours.sizes(), ref.sizes()) << what;
    EXPECT_EQ(ours.scalar_type(), at::kBFloat16) << what;
    diff[what] = std::max(diff[what], test::max_abs_diff(ours, ref));
  };

  // Prefill (masks are 0/1 integers multiplied into bf16, as in Python).
  const at::Tensor tm = g["inference.text_mask"].unsqueeze(-1), am = g["inference.audio_mask"].unsqueeze(-1);
  const at::Tensor feat = enc(bf(g["inference.audio_feat"]));
  check("prefill.feat_encoder_out", feat, g["prefill.feat_encoder_out"]);
  const at::Tensor feat_embed = enc_to_lm(feat);
  const at::Tensor emb = tm * base.embed(g["inference.text_tokens"]) + am * feat_embed;
  KVCache base_cache = base.new_cache(1, c.max_length), res_cache = residual.new_cache(1, c.max_length);
  at::Tensor enc_out = base.forward(emb, true, &base_cache);
  check("prefill.base_lm_hidden", enc_out, g["prefill.base_lm_hidden"]);
  enc_out = fsq(enc_out) * am + enc_out * tm;
  const at::Tensor res_in =
      c.is_v2() ? fusion(at::cat({enc_out, am * feat_embed}, -1)) : enc_out + am * feat_embed;
  check("prefill.residual_lm_hidden", residual.forward(res_in, true, &res_cache), g["prefill.residual_lm_hidden"]);

  at::Generator gen = at::detail::createCPUGenerator(g.meta["generation_args"]["seed"].get<uint64_t>());
  const int64_t n = g["steps.noise"].size(0);
  for (int64_t i = 0; i < n; ++i) {
    const at::Tensor lm_hidden = bf(g["steps.lm_hidden"][i]).unsqueeze(0);
    check("steps.stop_logits", stop(lm_hidden), g["steps.stop_logits"][i].unsqueeze(0));
    if (i > 0) {
      const at::Tensor res_hidden = bf(g["steps.residual_lm_step_out"][i - 1]).unsqueeze(0);
      const at::Tensor mu = c.is_v2() ? at::cat({lm_to_dit(lm_hidden), res_to_dit(res_hidden)}, -1)
                                      : lm_to_dit(lm_hidden) + res_to_dit(res_hidden);
      check("steps.dit_mu", mu, g["steps.dit_mu"][i].unsqueeze(0));
    }
    CfmTrace trace;
    const at::Tensor patch = cfm.sample(bf(g["steps.dit_mu"][i]).unsqueeze(0), 10, bf(g["steps.cond"][i]).unsqueeze(0),
                                        2.0, gen, &trace);
    check("steps.noise", trace.noise, g["steps.noise"][i].unsqueeze(0));
    check("steps.pred_patch", patch.transpose(1, 2), g["steps.pred_patch"][i].unsqueeze(0));
    if (i + 1 == n) break;
    const at::Tensor e = enc_to_lm(enc(bf(g["steps.pred_patch"][i]).view({1, 1, c.patch_size, c.feat_dim}))).select(1, 0);
    check("steps.base_lm_step_in", e, g["steps.base_lm_step_in"][i].unsqueeze(0));
    const at::Tensor out = base.forward_step(bf(g["steps.base_lm_step_in"][i]).unsqueeze(0), base_cache);
    check("steps.base_lm_step_out", out, g["steps.base_lm_step_out"][i].unsqueeze(0));
    check("steps.lm_hidden (fsq)", fsq(bf(g["steps.base_lm_step_out"][i]).unsqueeze(0)), g["steps.lm_hidden"][i + 1].unsqueeze(0));
    const at::Tensor lm_next = bf(g["steps.lm_hidden"][i + 1]).unsqueeze(0);
    const at::Tensor r_in = c.is_v2() ? fusion(at::cat({lm_next, e}, -1)) : lm_next + e;
    check("steps.residual_lm_step_in", r_in, g["steps.residual_lm_step_in"][i].unsqueeze(0));
    check("steps.residual_lm_step_out",
          residual.forward_step(bf(g["steps.residual_lm_step_in"][i]).unsqueeze(0), res_cache),
          g["steps.residual_lm_step_out"][i].unsqueeze(0));
  }
  // On the reference machine every stage is bit-exact (all diffs 0). Bounds allow for other
  // CPUs' GEMM kernels: ~3 bf16 ulps on hidden states, more on the CFM output (ODE amplification).
  for (const auto& [what, d] : diff) {
    std::cout << v << " bf16 " << what << " max diff " << d << "\n";
    EXPECT_LE(d, what == "steps.pred_patch" ? 0.2 : 0.1) << what;
  }
  EXPECT_EQ(diff["steps.noise"], 0.0) << "the bf16 draw must be the official stream";
}

INSTANTIATE_TEST_SUITE_P(Versions, ModulesBf16, ::testing::Values("v1", "v1.5", "v2"),
                         [](const auto& info) { return info.param == "v1.5" ? std::string("v1_5") : info.param; });

TEST(Modules, BadInputThrows) {
  const Tiny m = load_tiny("v2");
  const LocEnc enc(m.weights, m.cfg, ModuleOptions{});
  expect_error_containing([&] { enc(at::zeros({1, 3, 2, 64})); }, "feat_encoder: input must be [B, T, 4, 64]");
  expect_error_containing([&] { enc(at::zeros({3, 4, 64})); }, "feat_encoder: input must be");
  const LocDiT dit(m.weights, m.cfg, ModuleOptions{});
  const at::Tensor x = at::zeros({2, 64, 4}), t = at::zeros({2});
  expect_error_containing([&] { dit(x, at::zeros({2, 32}), t, x, t); }, "mu [N, 64]");
  expect_error_containing([&] { dit(x, at::zeros({2, 64}), at::zeros({3}), x, t); }, "t [N]");
  expect_error_containing([&] { dit(at::zeros({2, 32, 4}), at::zeros({2, 64}), t, x, t); }, "x [N, 64, P]");
}

TEST(Modules, WrongWeightShapeNamesTensor) {
  const Tiny m = load_tiny("v2");
  const std::map<std::string, std::vector<int64_t>> bad = {
      {"feat_encoder.special_token", {1, 1, 32}},
      {"feat_encoder.encoder.layers.0.mlp.up_proj.weight", {96, 31}},
      {"feat_decoder.estimator.time_mlp.linear_2.bias", {31}},
      {"feat_decoder.estimator.decoder.layers.0.self_attn.q_proj.weight", {32, 32}},
      {"fsq_layer.in_proj.weight", {33, 64}},
      {"stop_head.weight", {2, 63}},
  };
  for (const auto& [name, shape] : bad) {
    TensorMap t = m.weights.tensors();
    ASSERT_TRUE(t.count(name)) << name;
    t[name] = at::zeros(shape, at::kBFloat16);
    const Weights w(t, "bad.safetensors");
    const std::string needle = "'" + name + "' has shape " + shape_str(shape);
    if (name.rfind("feat_encoder", 0) == 0)
      expect_error_containing([&] { (void)LocEnc(w, m.cfg, ModuleOptions{}); }, needle);
    else if (name.rfind("feat_decoder", 0) == 0)
      expect_error_containing([&] { (void)LocDiT(w, m.cfg, ModuleOptions{}); }, needle);
    else if (name.rfind("fsq", 0) == 0)
      expect_error_containing([&] { ScalarQuantizer::load(w, m.cfg, ModuleOptions{}); }, needle);
    else
      expect_error_containing([&] { StopHead::load(w, m.cfg, ModuleOptions{}); }, needle);
  }
}

}  // namespace

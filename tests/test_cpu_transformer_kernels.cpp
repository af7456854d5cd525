// The transformer's decode-size CPU kernels (cpu_transformer_kernels.h) against the tensor-op
// math they replace, in double precision: attention from the fused Q/K/V rows (causal and not,
// with and without a cache prefix, GQA, RoPE or none, head widths of one and several column
// blocks, thread counts), SiLU·up over the activation range and non-finite values, the in-place
// residual add (bit-exact: the same two roundings), and misuse.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "voxcpm/cpu_transformer_kernels.h"
#include "voxcpm/error.h"

using namespace voxcpm;

namespace {

double max_err(const at::Tensor& got, const at::Tensor& ref) {
  return (got.to(at::kDouble) - ref.to(at::kDouble)).abs().max().item<double>();
}

// Rotate-half RoPE of x [..., S, hd] with tables [S, hd], in double.
at::Tensor rope_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.to(at::kDouble) + rotated * sin.to(at::kDouble);
}

struct Case {
  int64_t B, S, heads, kv, hd, pos;
  bool causal, rope;
};

// The whole computation in double tensor ops: keys of the cache prefix (already rotated) plus
// the new ones, repeat_interleave for GQA, scores·scale with the causal mask, softmax, ·V.
void check_attention(const Case& c) {
  SCOPED_TRACE("B " + std::to_string(c.B) + " S " + std::to_string(c.S) + " heads " + std::to_string(c.heads) +
               "/" + std::to_string(c.kv) + " hd " + std::to_string(c.hd) + " pos " + std::to_string(c.pos) +
               (c.causal ? " causal" : "") + (c.rope ? " rope" : ""));
  const int64_t T = c.pos + c.S + 3;  // spare slots stay untouched
  const at::Tensor qkv = at::randn({c.B * c.S, (c.heads + 2 * c.kv) * c.hd});
  const at::Tensor keys = at::randn({c.B, c.kv, T, c.hd}), values = at::randn({c.B, c.kv, T, c.hd});
  const at::Tensor keys_before = keys.clone(), values_before = values.clone();
  at::Tensor cos, sin;
  if (c.rope) {
    const at::Tensor angle = at::rand({c.S, c.hd / 2}) * 6.3;
    cos = at::cat({angle.cos(), angle.cos()}, -1).contiguous();
    sin = at::cat({angle.sin(), angle.sin()}, -1).contiguous();
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.hd));
  const at::Tensor out = cpu::attention_from_qkv(qkv, {c.B, c.S, c.heads, c.kv, c.hd}, keys, values, c.pos,
                                                 c.causal, cos, sin, scale);
  ASSERT_EQ(out.sizes(), at::IntArrayRef({c.B, c.S, c.heads * c.hd}));

  const at::Tensor rows = qkv.to(at::kDouble).view({c.B, c.S, c.heads + 2 * c.kv, c.hd}).transpose(1, 2);
  at::Tensor q = rows.narrow(1, 0, c.heads), k_new = rows.narrow(1, c.heads, c.kv);
  const at::Tensor v_new = rows.narrow(1, c.heads + c.kv, c.kv);
  if (c.rope) {
    q = rope_reference(q, cos, sin);
    k_new = rope_reference(k_new, cos, sin);
  }
  // The new slots hold the rotated keys and the values; everything else is as it was.
  EXPECT_LT(max_err(keys.narrow(2, c.pos, c.S), k_new), 1e-6);
  EXPECT_EQ(max_err(values.narrow(2, c.pos, c.S), v_new), 0);
  EXPECT_TRUE(at::equal(keys.narrow(2, 0, c.pos), keys_before.narrow(2, 0, c.pos)));
  EXPECT_TRUE(at::equal(keys.narrow(2, c.pos + c.S, 3), keys_before.narrow(2, c.pos + c.S, 3)));
  EXPECT_TRUE(at::equal(values.narrow(2, c.pos + c.S, 3), values_before.narrow(2, c.pos + c.S, 3)));

  const int64_t n = c.pos + c.S, group = c.heads / c.kv;
  const at::Tensor k_all = at::cat({keys_before.narrow(2, 0, c.pos).to(at::kDouble), k_new}, 2).repeat_interleave(group, 1);
  const at::Tensor v_all = at::cat({values_before.narrow(2, 0, c.pos).to(at::kDouble), v_new}, 2).repeat_interleave(group, 1);
  at::Tensor scores = at::matmul(q, k_all.transpose(-2, -1)) * scale;
  if (c.causal) {  // query s (position pos+s) sees keys 0..pos+s
    const at::Tensor mask = at::ones({c.S, n}, at::kBool).triu_(c.pos + 1);
    scores = scores.masked_fill(mask, -std::numeric_limits<double>::infinity());
  }
  const at::Tensor ref = at::matmul(at::softmax(scores, -1), v_all).transpose(1, 2).reshape({c.B, c.S, c.heads * c.hd});
  EXPECT_LT(max_err(out, ref), 2e-6);
}

}  // namespace

TEST(CpuTransformerKernels, AttentionMatchesTheTensorOps) {
  if (!cpu::attention_from_qkv_supported(64)) GTEST_SKIP() << "no AVX2/FMA on this CPU: the transformer uses ATen ops";
  at::manual_seed(11);
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    // A LocDiT/LocEnc call: whole sequence, bidirectional, no cache (keys = the new ones).
    check_attention({2, 9, 4, 4, 64, 0, false, false});
    check_attention({1, 5, 4, 2, 64, 0, false, true});
    // Prefill-like causal sequences, GQA, one and several 64-column blocks, a 3-block tail.
    check_attention({1, 7, 8, 2, 64, 0, true, true});
    check_attention({2, 3, 4, 1, 128, 0, true, true});
    check_attention({1, 4, 2, 2, 24, 0, true, false});
    check_attention({1, 2, 4, 2, 8, 0, false, true});
    // LM steps: one query after a cache prefix, and a few queries after one.
    check_attention({1, 1, 16, 2, 64, 65, true, true});
    check_attention({2, 1, 4, 2, 64, 300, true, true});
    check_attention({1, 3, 4, 2, 32, 10, true, true});
    check_attention({1, 3, 4, 4, 32, 10, false, false});
  }
  at::set_num_threads(2);
}

TEST(CpuTransformerKernels, SiluMulMatchesTheDefinition) {
  if (!cpu::attention_from_qkv_supported(8)) GTEST_SKIP() << "no AVX2/FMA on this CPU: the transformer uses ATen ops";
  at::manual_seed(3);
  double worst = 0;
  for (int64_t F : {1, 7, 8, 9, 1023, 1024, 1025, 4096}) {
    for (double range : {1.0, 10.0, 80.0, 1000.0}) {
      const at::Tensor gu = (at::rand({3, 2 * F}) * 2 - 1) * range;
      const at::Tensor y = cpu::silu_mul(gu);
      ASSERT_EQ(y.sizes(), at::IntArrayRef({3, F}));
      const at::Tensor g = gu.narrow(-1, 0, F).to(at::kDouble), u = gu.narrow(-1, F, F).to(at::kDouble);
      const at::Tensor ref = g / (1 + at::exp(-g)) * u;
      // A few ulp (exp's 2, the division's, the product's) of the value, or 1e-30 absolute where
      // exp(−g) overflows in float (g < −88.7: the quotient is ±0, the true value below 1e-34).
      const at::Tensor err = (y.to(at::kDouble) - ref).abs();
      EXPECT_TRUE((err <= ref.abs() * 1e-6 + 1e-30).all().item<bool>()) << "F " << F << ", range " << range;
      worst = std::max(worst, (err / ref.abs()).masked_fill(ref.abs() < 1e-30, 0).max().item<double>());
    }
  }
  std::cout << "silu_mul: largest relative error " << worst << "\n";
  // Non-finite and huge gates as g/(1+exp(−g)) in float: NaN stays NaN, +inf gives inf, −inf
  // gives NaN (−inf/inf), −200 gives −0 (exp(200) overflows).
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor gu = at::ones({1, 16});
  gu[0][0] = nan;
  gu[0][1] = inf;
  gu[0][2] = -inf;
  gu[0][3] = -200;
  const at::Tensor y = cpu::silu_mul(gu);
  EXPECT_TRUE(std::isnan(y[0][0].item<float>()));
  EXPECT_EQ(y[0][1].item<float>(), inf);
  EXPECT_TRUE(std::isnan(y[0][2].item<float>()));
  EXPECT_EQ(y[0][3].item<float>(), 0.0f);
  EXPECT_TRUE(std::signbit(y[0][3].item<float>()));
  EXPECT_NEAR(y[0][4].item<float>(), 1 / (1 + std::exp(-1.0f)), 1e-7);
}

TEST(CpuTransformerKernels, ResidualAddIsTheTensorOpsBitForBit) {
  at::manual_seed(4);
  for (float scale : {1.0f, 0.7f, static_cast<float>(1.4 / std::sqrt(24.0))}) {
    const at::Tensor x0 = at::randn({3, 1000}), h = at::randn({3, 1000}) * 5;
    at::Tensor x = x0.clone();
    cpu::add_scaled_(x, h, scale);
    const at::Tensor ref = scale == 1.0f ? x0 + h : x0 + h * scale;
    EXPECT_TRUE(at::equal(x, ref)) << "scale " << scale;
  }
}

TEST(CpuTransformerKernels, MisuseThrows) {
  if (!cpu::attention_from_qkv_supported(64)) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  const at::Tensor qkv = at::randn({2, 6 * 64}), kv = at::zeros({1, 1, 4, 64});
  const at::Tensor none;
  EXPECT_NO_THROW(cpu::attention_from_qkv(qkv, {1, 2, 4, 1, 64}, kv.clone(), kv.clone(), 0, true, none, none, 0.1));
  // Wrong row width, too few cache slots, a negative position, heads not a multiple of kv heads,
  // double input.
  EXPECT_THROW(cpu::attention_from_qkv(qkv, {1, 2, 4, 2, 64}, kv, kv, 0, true, none, none, 0.1), Error);
  EXPECT_THROW(cpu::attention_from_qkv(qkv, {1, 2, 4, 1, 64}, kv, kv, 3, true, none, none, 0.1), Error);
  EXPECT_THROW(cpu::attention_from_qkv(qkv, {1, 2, 4, 1, 64}, kv, kv, -1, true, none, none, 0.1), Error);
  EXPECT_THROW(cpu::attention_from_qkv(at::randn({2, 9 * 64}), {1, 2, 5, 2, 64}, at::zeros({1, 2, 4, 64}),
                                       at::zeros({1, 2, 4, 64}), 0, true, none, none, 0.1),
               Error);
  EXPECT_THROW(cpu::attention_from_qkv(qkv.to(at::kDouble), {1, 2, 4, 1, 64}, kv, kv, 0, true, none, none, 0.1),
               Error);
  EXPECT_THROW(cpu::attention_from_qkv(qkv, {1, 2, 4, 1, 60}, kv, kv, 0, true, none, none, 0.1), Error);
  // RoPE tables of the wrong length; mismatched residual shapes; odd SiLU·up width.
  EXPECT_THROW(cpu::attention_from_qkv(qkv, {1, 2, 4, 1, 64}, kv, kv, 0, true, at::zeros({1, 64}),
                                       at::zeros({1, 64}), 0.1),
               Error);
  at::Tensor x = at::zeros({2, 3});
  EXPECT_THROW(cpu::add_scaled_(x, at::zeros({3, 2}), 1.0f), Error);
  EXPECT_THROW(cpu::silu_mul(at::zeros({2, 5})), Error);
}

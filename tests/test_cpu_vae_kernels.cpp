// The AudioVAE's CPU kernels (cpu_vae_kernels.h) against double-precision references: Snake over
// the argument range activations reach (and beyond, where the kernel falls back to std::sin),
// every tail length, non-finite values; the depthwise conv against at::conv1d for the decoder's
// dilations; thread counts; misuse.
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "voxcpm/cpu_linear.h"
#include "voxcpm/cpu_vae_kernels.h"
#include "voxcpm/error.h"

using namespace voxcpm;

namespace {

at::Tensor snake_reference(const at::Tensor& x, const at::Tensor& alpha) {
  const at::Tensor xd = x.to(at::kDouble), ad = alpha.to(at::kDouble);
  const at::Tensor s = at::sin(ad * xd);
  return xd + s * s / (ad + 1e-9);
}

double max_err(const at::Tensor& got, const at::Tensor& ref) { return (got.to(at::kDouble) - ref).abs().max().item<double>(); }

}  // namespace

TEST(CpuVaeKernels, SnakeMatchesTheDefinition) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU: the AudioVAE uses ATen ops";
  at::manual_seed(5);
  for (int64_t len : {1, 5, 8, 9, 15, 16, 17, 300}) {
    for (double scale : {0.1, 3.0, 100.0, 3000.0}) {
      const at::Tensor x = at::randn({2, 6, len}) * scale;
      const at::Tensor alpha = at::rand({1, 6, 1}) * 4 + 0.05;
      const at::Tensor inv = (alpha + 1e-9).reciprocal();
      const at::Tensor y = cpu::snake(x, alpha, inv);
      // Float32 inputs: the error is a few ulp of the argument's sine and of the sum.
      const double tol = 4e-7 * (1 + x.abs().max().item<double>()) + 4e-6 * (1 / alpha.min().item<double>());
      EXPECT_LT(max_err(y, snake_reference(x, alpha)), tol) << "len " << len << " scale " << scale;
      // ATen's own float ops (the path off AVX2 CPUs) agree just as closely.
      const at::Tensor s = at::sin(alpha * x);
      EXPECT_LT(max_err(y, s * s * inv + x), tol) << "len " << len << " scale " << scale;
    }
  }
}

TEST(CpuVaeKernels, SnakeOfHugeAndNonFiniteValues) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor x = at::tensor({1e6f, -3e7f, 65536.5f, 1e30f, inf, -inf, NAN, 0.5f, 0.f}).view({1, 1, 9});
  const at::Tensor alpha = at::ones({1, 1, 1}), inv = at::ones({1, 1, 1});
  const at::Tensor y = cpu::snake(x, alpha, inv);
  for (int64_t i = 0; i < 9; ++i) {
    const double xi = x[0][0][i].item<double>();
    const double want = std::isfinite(xi) ? xi + std::sin(static_cast<float>(xi)) * std::sin(static_cast<float>(xi))
                                          : std::numeric_limits<double>::quiet_NaN();
    const double got = y[0][0][i].item<double>();
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << "x " << xi << " gives " << got;
    } else {
      EXPECT_NEAR(got, want, 1e-6 * (1 + std::abs(xi))) << "x " << xi;
    }
  }
}

TEST(CpuVaeKernels, AFrameDoesNotDependOnWhereItFalls) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  // The stateful decoder sees frames in chunks: the vector tail must give the same bits.
  const at::Tensor x = at::randn({1, 3, 37}), alpha = at::rand({1, 3, 1}) + 0.5, inv = (alpha + 1e-9).reciprocal();
  const at::Tensor whole = cpu::snake(x, alpha, inv);
  for (int64_t start : {0, 3, 8, 29, 36}) {
    const at::Tensor part = cpu::snake(x.narrow(2, start, 37 - start).contiguous(), alpha, inv);
    EXPECT_TRUE(at::equal(part, whole.narrow(2, start, 37 - start))) << "from frame " << start;
  }
}

TEST(CpuVaeKernels, DepthwiseConvMatchesConv1d) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  at::manual_seed(7);
  for (int64_t dilation : {1, 3, 9}) {
    for (int64_t out_len : {0, 1, 7, 8, 9, 100}) {
      const int64_t c = 5, len = out_len + 6 * dilation;
      const at::Tensor x = at::randn({2, c, len}), w = at::randn({c, 1, 7}), b = at::randn({c});
      const at::Tensor y = cpu::depthwise_conv1d(x, w, b, dilation);
      ASSERT_EQ(y.sizes(), at::IntArrayRef({2, c, out_len}));
      if (out_len == 0) continue;  // at::conv1d refuses an input no longer than the kernel's reach
      const at::Tensor ref = at::conv1d(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble), at::IntArrayRef(1),
                                        at::IntArrayRef(0), at::IntArrayRef(dilation), c);
      EXPECT_LT(max_err(y, ref), 2e-5) << "dilation " << dilation << " out " << out_len;
    }
  }
}

TEST(CpuVaeKernels, FewOutputConvMatchesConv1dAndIgnoresChunking) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  at::manual_seed(13);
  for (int64_t outputs : {1, 3}) {
    for (int64_t dilation : {1, 2}) {
      for (int64_t out_len : {0, 1, 15, 16, 17, 600}) {
        const int64_t c = 9, len = out_len + 6 * dilation;
        const at::Tensor x = at::randn({2, c, len}), w = at::randn({outputs, c, 7}), b = at::randn({outputs});
        const at::Tensor y = cpu::conv1d_few_outputs(x, w, b, dilation);
        ASSERT_EQ(y.sizes(), at::IntArrayRef({2, outputs, out_len}));
        if (out_len == 0) continue;
        const at::Tensor ref = at::conv1d(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble), at::IntArrayRef(1),
                                          at::IntArrayRef(0), at::IntArrayRef(dilation));
        EXPECT_LT(max_err(y, ref), 1e-4) << "outputs " << outputs << " dilation " << dilation << " out " << out_len;
        // A frame computed from a later start (the stateful decoder's chunks) has the same bits.
        if (out_len > 5) {
          const at::Tensor part = cpu::conv1d_few_outputs(x.narrow(2, 5, len - 5).contiguous(), w, b, dilation);
          EXPECT_TRUE(at::equal(part, y.narrow(2, 5, out_len - 5)));
        }
      }
    }
  }
  EXPECT_THROW(cpu::conv1d_few_outputs(at::randn({1, 4, 5}), at::randn({1, 4, 7}), at::randn({1}), 1), Error);
  EXPECT_THROW(cpu::conv1d_few_outputs(at::randn({1, 4, 20}), at::randn({1, 3, 7}), at::randn({1}), 1), Error);
  EXPECT_THROW(cpu::conv1d_few_outputs(at::randn({1, 4, 20}), at::randn({1, 4, 7}), at::randn({2}), 1), Error);
}

// The fused residual-unit kernel is the three kernels in a row, bit for bit, with zero padding
// (full decode) and with a history carried over chunks of any length, shorter than the pad too.
TEST(CpuVaeKernels, FusedSnakeDepthwiseSnakeIsTheThreeKernels) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  at::manual_seed(11);
  const int64_t B = 2, C = 6, L = 41;
  const at::Tensor x = at::randn({B, C, L}), w = at::randn({C, 1, 7}), b = at::randn({C});
  const at::Tensor a1 = at::rand({1, C, 1}) + 0.5, i1 = (a1 + 1e-9).reciprocal();
  const at::Tensor a2 = at::rand({1, C, 1}) + 0.5, i2 = (a2 + 1e-9).reciprocal();
  for (int64_t d : {1, 3, 9}) {
    const int64_t P = 6 * d;
    const at::Tensor s1 = at::constant_pad_nd(cpu::snake(x, a1, i1), {P, 0});
    const at::Tensor want = cpu::snake(cpu::depthwise_conv1d(s1, w, b, d), a2, i2);
    EXPECT_TRUE(at::equal(cpu::snake_depthwise_snake(x, a1, i1, w, b, d, a2, i2, nullptr), want)) << "dilation " << d;
    at::Tensor history = at::zeros({B, C, P});
    std::vector<at::Tensor> parts;
    int64_t pos = 0;
    for (int64_t n : {1, 2, 30, 8}) {
      parts.push_back(cpu::snake_depthwise_snake(x.narrow(2, pos, n).contiguous(), a1, i1, w, b, d, a2, i2, &history));
      pos += n;
    }
    EXPECT_TRUE(at::equal(at::cat(parts, 2), want)) << "chunked, dilation " << d;
    EXPECT_TRUE(at::equal(history, s1.narrow(2, L, P))) << "history holds the last conv inputs";
  }
  at::Tensor short_history = at::zeros({B, C, 5});
  EXPECT_THROW(cpu::snake_depthwise_snake(x, a1, i1, w, b, 1, a2, i2, &short_history), Error);
  EXPECT_THROW(cpu::snake_depthwise_snake(x, a1, i1, w, b.narrow(0, 0, 5), 1, a2, i2, nullptr), Error);
}

// The last conv's and the transposed convs' inputs: snake written after its history, and snake
// stacked over its one-frame shift; bit for bit the snake + cat they replace, chunk by chunk.
TEST(CpuVaeKernels, SnakeIntoConvInputsIsSnakePlusCat) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  at::manual_seed(17);
  const int64_t B = 2, C = 5, L = 23, P = 6;
  const at::Tensor x = at::randn({B, C, L}), a = at::rand({1, C, 1}) + 0.5, inv = (a + 1e-9).reciprocal();
  const at::Tensor s = cpu::snake(x, a, inv);
  const at::Tensor padded = at::constant_pad_nd(s, {P, 0});
  EXPECT_TRUE(at::equal(cpu::snake_after_history(x, a, inv, nullptr, P), padded));
  const at::Tensor shifted = at::cat({at::zeros({B, C, 1}), s.narrow(2, 0, L - 1)}, 2);
  EXPECT_TRUE(at::equal(cpu::snake_and_shifted(x, a, inv, nullptr), at::cat({s, shifted}, 1)));
  at::Tensor history = at::zeros({B, C, P}), previous = at::zeros({B, C, 1});
  int64_t pos = 0;
  for (int64_t n : {1, 3, 15, 4}) {
    const at::Tensor part = x.narrow(2, pos, n).contiguous();
    EXPECT_TRUE(at::equal(cpu::snake_after_history(part, a, inv, &history, P), padded.narrow(2, pos, P + n)))
        << "frames " << pos << "+" << n;
    const at::Tensor stacked = cpu::snake_and_shifted(part, a, inv, &previous);
    EXPECT_TRUE(at::equal(stacked, at::cat({s.narrow(2, pos, n), shifted.narrow(2, pos, n)}, 1)))
        << "frames " << pos << "+" << n;
    pos += n;
  }
  EXPECT_TRUE(at::equal(previous, s.narrow(2, L - 1, 1)));
  at::Tensor wrong = at::zeros({B, C, 2});
  EXPECT_THROW(cpu::snake_and_shifted(x, a, inv, &wrong), Error);
  EXPECT_THROW(cpu::snake_after_history(x, a, inv, &wrong, P), Error);
}

// Winograd F(2,2) inputs of the transposed convs: [u_2m; u_2m-1 - u_2m; u_2m+1 - u_2m] of
// u = snake(x) (or x) after the previous frame, bit for bit, odd lengths padded with a zero frame.
TEST(CpuVaeKernels, TransposedConvPairInputs) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  at::manual_seed(23);
  const int64_t B = 2, C = 5;
  const at::Tensor a = at::rand({1, C, 1}) + 0.5, inv = (a + 1e-9).reciprocal();
  for (bool with_snake : {true, false}) {
    for (int64_t L : {1, 2, 7, 24}) {
      const at::Tensor x = at::randn({B, C, L});
      const at::Tensor prev0 = at::randn({B, C, 1});
      const at::Tensor u = with_snake ? cpu::snake(x, a, inv) : x;
      const int64_t M = (L + 1) / 2;
      // [u_-1, u_0, ..., u_L-1 (, 0)]
      const at::Tensor ext = at::cat({prev0, u, at::zeros({B, C, 2 * M - L})}, 2);
      const at::Tensor mid = ext.narrow(2, 1, 2 * M).view({B, C, M, 2}).select(3, 0);
      const at::Tensor before = ext.narrow(2, 0, 2 * M).view({B, C, M, 2}).select(3, 0);
      const at::Tensor after = ext.narrow(2, 1, 2 * M).view({B, C, M, 2}).select(3, 1);
      const at::Tensor want = at::stack({mid, before - mid, after - mid}, 1);
      at::Tensor previous = prev0.clone();
      const at::Tensor got = with_snake ? cpu::transposed_conv_pair_inputs(x, a, inv, &previous)
                                        : cpu::transposed_conv_pair_inputs(x, {}, {}, &previous);
      EXPECT_TRUE(at::equal(got, want)) << "L " << L << (with_snake ? " with snake" : "");
      EXPECT_TRUE(at::equal(previous, u.narrow(2, L - 1, 1))) << "previous becomes the last frame";
      // No history: u_-1 = 0.
      const at::Tensor first = cpu::transposed_conv_pair_inputs(x, with_snake ? a : at::Tensor(),
                                                                with_snake ? inv : at::Tensor(), nullptr);
      EXPECT_TRUE(at::equal(first.select(1, 1).select(2, 0), -mid.select(2, 0))) << "L " << L;
    }
  }
  at::Tensor wrong = at::zeros({B, C, 2});
  EXPECT_THROW(cpu::transposed_conv_pair_inputs(at::randn({B, C, 4}), a, inv, &wrong), Error);
  EXPECT_THROW(cpu::transposed_conv_pair_inputs(at::randn({B, C, 0}), a, inv, nullptr), Error);
}

// The pair products back in time order: y[c, 2m·s + r] = even[c·s + r, m], y[c, (2m+1)·s + r] = odd[...].
TEST(CpuVaeKernels, InterleaveFramePairs) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  at::manual_seed(29);
  const int64_t B = 2, C = 3;
  for (int64_t s : {1, 2, 3, 7}) {
    for (int64_t frames : {1, 2, 9, 40}) {
      const int64_t M = (frames + 1) / 2;
      const at::Tensor even = at::randn({B, C * s, M}), odd = at::randn({B, C * s, M});
      // [B, C, s, M, 2] → [B, C, M, 2, s] → frames in order, phases inside each frame.
      const at::Tensor want = at::stack({even, odd}, -1)
                                  .view({B, C, s, M, 2})
                                  .permute({0, 1, 3, 4, 2})
                                  .reshape({B, C, 2 * M * s})
                                  .narrow(2, 0, frames * s);
      EXPECT_TRUE(at::equal(cpu::interleave_frame_pairs(even, odd, s, frames), want)) << "s " << s << ", frames " << frames;
    }
  }
  const at::Tensor e = at::randn({1, 6, 3});
  EXPECT_THROW(cpu::interleave_frame_pairs(e, at::randn({1, 6, 2}), 2, 5), Error);  // shapes differ
  EXPECT_THROW(cpu::interleave_frame_pairs(e, e, 4, 5), Error);                     // 6 rows, 4 phases
  EXPECT_THROW(cpu::interleave_frame_pairs(e, e, 2, 7), Error);                     // 7 frames need 4 pairs
}

TEST(CpuVaeKernels, ThreadCountDoesNotChangeTheResult) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  const at::Tensor x = at::randn({1, 64, 3000}), alpha = at::rand({1, 64, 1}) + 0.5, inv = (alpha + 1e-9).reciprocal();
  const at::Tensor w = at::randn({64, 1, 7}), b = at::randn({64});
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor s1 = cpu::snake(x, alpha, inv), c1 = cpu::depthwise_conv1d(x, w, b, 3);
  at::set_num_threads(2);
  const at::Tensor s2 = cpu::snake(x, alpha, inv), c2 = cpu::depthwise_conv1d(x, w, b, 3);
  at::set_num_threads(before);
  EXPECT_TRUE(at::equal(s1, s2));
  EXPECT_TRUE(at::equal(c1, c2));
}

TEST(CpuVaeKernels, MisuseIsAnError) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  const at::Tensor a = at::ones({1, 4, 1});
  EXPECT_THROW(cpu::snake(at::randn({4, 10}), a, a), Error);                         // not [B, C, L]
  EXPECT_THROW(cpu::snake(at::randn({1, 4, 10}).to(at::kDouble), a, a), Error);      // dtype
  EXPECT_THROW(cpu::snake(at::randn({1, 4, 10}).transpose(1, 2), a, a), Error);      // strides
  EXPECT_THROW(cpu::snake(at::randn({1, 5, 10}), a, a), Error);                      // channels
  EXPECT_THROW(cpu::depthwise_conv1d(at::randn({1, 4, 5}), at::randn({4, 1, 7}), at::randn({4}), 1), Error);
  EXPECT_THROW(cpu::depthwise_conv1d(at::randn({1, 4, 20}), at::randn({4, 2, 7}), at::randn({4}), 1), Error);
  EXPECT_THROW(cpu::depthwise_conv1d(at::randn({1, 4, 20}), at::randn({4, 1, 7}), at::randn({3}), 1), Error);
  EXPECT_THROW(cpu::depthwise_conv1d(at::randn({1, 4, 20}), at::randn({4, 1, 7}), at::randn({4}), 0), Error);
}

// The packed float32 CPU kernel of cpu_linear.h against at::linear (double-precision reference):
// every row count the kernel tiles differently (1..6 and beyond), output counts that are not a
// multiple of the 16-wide panel, odd input widths, both layouts, threads, and misuse.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "voxcpm/cpu_linear.h"
#include "voxcpm/error.h"

using namespace voxcpm;

namespace {

double rel_err(const at::Tensor& got, const at::Tensor& ref) {
  return ((got.to(at::kDouble) - ref).abs().max() / (ref.abs().max() + 1e-30)).item<double>();
}

at::Tensor reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::linear(x.to(at::kDouble), w.to(at::kDouble), b.defined() ? b.to(at::kDouble) : at::Tensor());
}

}  // namespace

TEST(CpuLinear, MatchesLinearForEveryTileShape) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU: the engine uses at::linear";
  at::manual_seed(3);
  for (int64_t n : {1, 2, 15, 16, 17, 33, 130}) {
    for (int64_t k : {1, 7, 31, 64, 257}) {
      const at::Tensor w = at::randn({n, k}) / std::sqrt(static_cast<double>(k));
      const at::Tensor b = at::randn({n});
      const at::Tensor packed = cpu::pack_linear_weight(w);
      ASSERT_EQ(packed.size(0), (n + 15) / 16);
      for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 13, 18, 40}) {
        const at::Tensor x = at::randn({m, k});
        const at::Tensor ref = reference(x, w, b);
        EXPECT_LT(rel_err(cpu::packed_linear(x, packed, n, b), ref), 1e-5) << "n " << n << " k " << k << " m " << m;
        EXPECT_LT(rel_err(cpu::packed_linear(x, packed, n, at::Tensor()), reference(x, w, at::Tensor())), 1e-5);
        const at::Tensor cf = cpu::packed_linear_channels_first(x.t().contiguous(), packed, n, b);
        EXPECT_LT(rel_err(cf.t(), ref), 1e-5) << "channels first, n " << n << " k " << k << " m " << m;
      }
    }
  }
}

TEST(CpuLinear, KeepsLeadingDimensionsAndPacksAnyDtypeOrStrides) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  const at::Tensor w = at::randn({40, 24});
  const at::Tensor x = at::randn({2, 3, 24});
  const at::Tensor y = cpu::packed_linear(x, cpu::pack_linear_weight(w), 40, at::Tensor());
  EXPECT_EQ(y.sizes(), at::IntArrayRef({2, 3, 40}));
  EXPECT_LT(rel_err(y, reference(x, w, at::Tensor())), 1e-5);
  // A bfloat16 weight stays bfloat16 in the panels, holding the same values; a transposed view
  // packs like the contiguous matrix.
  const at::Tensor wb = w.to(at::kBFloat16);
  const at::Tensor pb = cpu::pack_linear_weight(wb);
  EXPECT_EQ(pb.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(pb.to(at::kFloat), cpu::pack_linear_weight(wb.to(at::kFloat))));
  const at::Tensor wt = w.t().contiguous().t();
  EXPECT_TRUE(at::equal(cpu::pack_linear_weight(wt), cpu::pack_linear_weight(w)));
}

TEST(CpuLinear, Bfloat16PanelsGiveTheFloat32ResultOfTheSameValues) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  for (int64_t m : {1, 5, 18}) {
    const at::Tensor wb = at::randn({70, 130}).to(at::kBFloat16), x = at::randn({m, 130}), b = at::randn({70});
    const at::Tensor from_bf16 = cpu::packed_linear(x, cpu::pack_linear_weight(wb), 70, b);
    const at::Tensor from_f32 = cpu::packed_linear(x, cpu::pack_linear_weight(wb.to(at::kFloat)), 70, b);
    EXPECT_TRUE(at::equal(from_bf16, from_f32)) << "m " << m << ": widening bfloat16 is exact";
    EXPECT_LT(rel_err(from_bf16, reference(x, wb.to(at::kFloat), b)), 1e-5);
  }
}

TEST(CpuLinear, ThreadCountDoesNotChangeTheResult) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  // Many panels (split over panels) and few panels over many rows (split over row blocks too).
  for (auto [n, m] : {std::pair<int64_t, int64_t>{300, 18}, {64, 1000}, {20, 333}}) {
    const at::Tensor w = at::randn({n, 96}), x = at::randn({m, 96}), b = at::randn({n});
    const at::Tensor packed = cpu::pack_linear_weight(w);
    const int before = at::get_num_threads();
    at::set_num_threads(1);
    const at::Tensor one = cpu::packed_linear(x, packed, n, b);
    const at::Tensor one_cf = cpu::packed_linear_channels_first(x.t().contiguous(), packed, n, b);
    at::set_num_threads(2);
    const at::Tensor two = cpu::packed_linear(x, packed, n, b);
    const at::Tensor two_cf = cpu::packed_linear_channels_first(x.t().contiguous(), packed, n, b);
    at::set_num_threads(before);
    EXPECT_TRUE(at::equal(one, two)) << "n " << n << " m " << m << ": one sum in a fixed order, whoever computes it";
    EXPECT_TRUE(at::equal(one_cf, two_cf)) << "n " << n << " m " << m;
    EXPECT_TRUE(at::equal(one, one_cf.t())) << "n " << n << " m " << m;
    EXPECT_LT(rel_err(two, reference(x, w, b)), 1e-5) << "n " << n << " m " << m;
  }
}

TEST(CpuLinear, PhasesInterleaveInTime) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  // A transposed conv of stride s: output j = c·s + r lands at [c, m·s + r]; also over row blocks.
  for (auto [s, m] : {std::pair<int64_t, int64_t>{7, 4}, {2, 3000}, {3, 50}, {1, 9}}) {
    const int64_t n = 24 * s, k = 40;
    const at::Tensor w = at::randn({n, k}), b = at::randn({n}), x = at::randn({k, m});
    const at::Tensor packed = cpu::pack_linear_weight(w);
    const at::Tensor plain = cpu::packed_linear_channels_first(x, packed, n, b);
    const at::Tensor y = cpu::packed_linear_channels_first(x, packed, n, b, s);
    ASSERT_EQ(y.sizes(), at::IntArrayRef({n / s, m * s}));
    EXPECT_TRUE(at::equal(y, plain.view({n / s, s, m}).permute({0, 2, 1}).reshape({n / s, m * s}))) << "s " << s;
  }
  EXPECT_THROW(cpu::packed_linear_channels_first(at::randn({8, 3}), cpu::pack_linear_weight(at::randn({20, 8})), 20,
                                                 at::Tensor(), 3),
               Error);  // 20 outputs are not 3 phases
}

TEST(CpuLinear, ChannelsFirstOverManyFramesGivesTheRowTileBits) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  // From 64 frames on, small weights take the frame-vectorised kernel (the AudioVAE's 1x1
  // convs), a last block of < 16 frames and large weights the row tiles: all the same bits as
  // the row-major product, and a residual is added as (W x + b) + r.
  at::manual_seed(5);
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    for (int64_t n : {1, 7, 16, 17, 64, 130, 300}) {
      for (int64_t k : {1, 7, 64, 257}) {
        const at::Tensor packed = cpu::pack_linear_weight(at::randn({n, k}).to(dt));
        const at::Tensor b = at::randn({n});
        for (int64_t m : {64, 65, 80, 100, 250}) {
          const at::Tensor x = at::randn({k, m}), r = at::randn({n, m});
          const at::Tensor cf = cpu::packed_linear_channels_first(x, packed, n, b);
          EXPECT_TRUE(at::equal(cf.t(), cpu::packed_linear(x.t().contiguous(), packed, n, b)))
              << "n " << n << " k " << k << " m " << m;
          EXPECT_TRUE(at::equal(cpu::packed_linear_channels_first(x, packed, n, at::Tensor()).t(),
                                cpu::packed_linear(x.t().contiguous(), packed, n, at::Tensor())));
          EXPECT_TRUE(at::equal(cpu::packed_linear_channels_first(x, packed, n, b, 1, r), cf + r))
              << "residual, n " << n << " k " << k << " m " << m;
        }
      }
    }
  }
  const at::Tensor packed = cpu::pack_linear_weight(at::randn({16, 8}));
  EXPECT_THROW(cpu::packed_linear_channels_first(at::randn({8, 70}), packed, 16, at::Tensor(), 1, at::randn({16, 69})),
               Error);  // residual shape
  EXPECT_THROW(cpu::packed_linear_channels_first(at::randn({8, 70}), packed, 16, at::Tensor(), 2, at::randn({8, 140})),
               Error);  // residual with phases
}

TEST(CpuLinear, LinearOfSiluRowMatchesAten) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    for (int64_t n : {1, 2, 16}) {
      const at::Tensor w = at::randn({n, 203}).to(dt).to(at::kFloat), x = at::randn({203}) * 4;
      std::vector<float> y(n);
      cpu::packed_linear_of_silu_row(x.data_ptr<float>(), cpu::pack_linear_weight(w.to(dt)), n, y.data());
      const at::Tensor got = at::from_blob(y.data(), {n}, at::kFloat);
      EXPECT_LT(rel_err(got, reference(at::silu(x.to(at::kDouble)), w, at::Tensor())), 1e-5)
          << "n " << n << " " << dt;
    }
  }
  float y[17];
  const float x[8] = {};
  EXPECT_THROW(cpu::packed_linear_of_silu_row(x, cpu::pack_linear_weight(at::randn({17, 8})), 17, y), Error);
}

TEST(CpuLinear, SeveralWeightsInOneCallGiveTheSameBits) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  // Q/K/V-like (uneven output counts, one not a multiple of the panel) and gate/up-like, both
  // dtypes, one row (a decode step) and several.
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    for (int64_t m : {1, 5, 18}) {
      const std::vector<int64_t> n = {64, 24, 40};
      std::vector<at::Tensor> packed;
      for (int64_t ni : n) packed.push_back(cpu::pack_linear_weight(at::randn({ni, 96}).to(dt)));
      const at::Tensor x = at::randn({2, m, 96});
      const at::Tensor y = cpu::packed_linears(x, packed, n);
      ASSERT_EQ(y.sizes(), at::IntArrayRef({2, m, 128}));
      int64_t off = 0;
      for (size_t i = 0; i < n.size(); ++i) {
        EXPECT_TRUE(at::equal(y.narrow(-1, off, n[i]), cpu::packed_linear(x, packed[i], n[i], at::Tensor())))
            << "matrix " << i << " m " << m;
        off += n[i];
      }
    }
  }
  const at::Tensor a = cpu::pack_linear_weight(at::randn({16, 8})), b = cpu::pack_linear_weight(at::randn({16, 9}));
  EXPECT_THROW(cpu::packed_linears(at::randn({1, 8}), {a, b}, {16, 16}), Error);  // input widths differ
  EXPECT_THROW(cpu::packed_linears(at::randn({1, 8}), {a, cpu::pack_linear_weight(at::randn({16, 8}).to(at::kBFloat16))},
                                   {16, 16}),
               Error);                                                                   // dtypes differ
  EXPECT_THROW(cpu::packed_linears(at::randn({1, 8}), {a}, {16, 16}), Error);         // counts
  EXPECT_THROW(cpu::packed_linears(at::randn({1, 7}), {a}, {16}), Error);             // x width
}

// Weights of 2 MiB and more get a mapping of their own (2 MiB aligned, for huge pages): the same
// panels, zero padded, as the layout defines them, for both stored dtypes; freed with the tensor.
TEST(CpuLinear, LargeWeightsKeepThePanelLayout) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  at::manual_seed(41);
  const int64_t n = 1001, k = 1100, panels = (n + 15) / 16;  // 4.4 MB in float32, 2.2 MB in bfloat16
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    for (int round = 0; round < 3; ++round) {  // allocate and free a few times
      const at::Tensor w = at::randn({n, k}).to(dt);
      const at::Tensor packed = cpu::pack_linear_weight(w);
      ASSERT_EQ(packed.scalar_type(), dt);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(packed.data_ptr()) % (uintptr_t{2} << 20), 0u) << "own 2 MiB aligned mapping";
      const at::Tensor want = at::constant_pad_nd(w, {0, 0, 0, panels * 16 - n}).view({panels, 16, k}).transpose(1, 2);
      EXPECT_TRUE(at::equal(packed, want)) << c10::toString(dt);
      const at::Tensor x = at::randn({3, k}), b = at::randn({n});
      EXPECT_LT(rel_err(cpu::packed_linear(x, packed, n, b), reference(x, w.to(at::kFloat), b)), 1e-5);
    }
  }
}

TEST(CpuLinear, MisuseIsAnError) {
  if (!cpu::packed_linear_supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  const at::Tensor packed = cpu::pack_linear_weight(at::randn({20, 8}));
  EXPECT_THROW(cpu::packed_linear(at::randn({3, 9}), packed, 20, at::Tensor()), Error);           // width
  EXPECT_THROW(cpu::packed_linear(at::randn({3, 8}), packed, 40, at::Tensor()), Error);           // outputs
  EXPECT_THROW(cpu::packed_linear(at::randn({3, 8}).to(at::kDouble), packed, 20, at::Tensor()), Error);
  EXPECT_THROW(cpu::packed_linear(at::randn({3, 8}), packed, 20, at::randn({19})), Error);        // bias
  EXPECT_THROW(cpu::packed_linear_channels_first(at::randn({9, 3}), packed, 20, at::Tensor()), Error);
  EXPECT_THROW(cpu::pack_linear_weight(at::randn({2, 3, 4})), Error);
  EXPECT_THROW(cpu::pack_linear_weight(at::ones({2, 3}, at::kLong)), Error);
  EXPECT_EQ(cpu::packed_linear(at::randn({0, 8}), packed, 20, at::Tensor()).sizes(), at::IntArrayRef({0, 20}));
}

// UnifiedCFM Euler sampler with CFG-zero* against the official code (golden-<v>/cfm_t10, cfm_t5,
// cfm_t10_bf16): the random draw from a per-request generator seeded like torch.manual_seed,
// the t schedule, every batched estimator call and the final patch.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/cfm.h"
#include "voxcpm/config.h"
#include "voxcpm/error.h"
#include "voxcpm/locdit.h"
#include "voxcpm/weights.h"

using namespace voxcpm;

namespace {

constexpr double kTol = 1e-4;  // fp32 parity tolerance

using test::expect_error_containing;
using Tiny = test::TinyParts;
Tiny load_tiny(const std::string& version) { return test::load_tiny_parts(version); }

struct CfmCase {
  std::string version, name;
};
// Without it gtest prints a parameter as its raw bytes, unused (uninitialised) string bytes included.
void PrintTo(const CfmCase& c, std::ostream* os) { *os << c.version << "/" << c.name; }

class CfmGolden : public ::testing::TestWithParam<CfmCase> {};

// float32 model: everything within the parity tolerance, the draw and the schedule exact.
TEST_P(CfmGolden, Float32MatchesOfficial) {
  const CfmCase c = GetParam();
  const Tiny m = load_tiny(c.version);
  const test::Golden g = test::load_golden(c.version, c.name);
  const ModuleOptions o;
  const LocDiT dit(m.weights, m.cfg, o);
  const UnifiedCFM cfm(dit, m.cfg, o);
  const int64_t n = g.meta["n_timesteps"].get<int64_t>();
  const double cfg_value = g.meta["cfg_value"].get<double>();

  at::Generator gen = at::detail::createCPUGenerator(g.meta["seed"].get<uint64_t>());
  CfmTrace trace;
  const at::Tensor out = cfm.sample(g["mu"], n, g["cond"], cfg_value, gen, &trace);
  EXPECT_CLOSE(trace.noise, g["noise"], 0.0);
  EXPECT_CLOSE(trace.t_span, g["t_span"], 0.0);
  const int64_t calls = g.meta["estimator_calls"].get<int64_t>();
  ASSERT_EQ(static_cast<int64_t>(trace.x_in.size()), calls);
  double dx = 0, dout = 0;
  for (int64_t j = 0; j < calls; ++j) {
    const std::string p = "estimator_call" + std::to_string(j);
    EXPECT_CLOSE(trace.x_in[j], g[p + ".x_in"], kTol);
    EXPECT_CLOSE(trace.t_in[j], g[p + ".t_in"], kTol);
    EXPECT_CLOSE(trace.out[j], g[p + ".out"], kTol);
    dx = std::max(dx, test::max_abs_diff(trace.x_in[j], g[p + ".x_in"]));
    dout = std::max(dout, test::max_abs_diff(trace.out[j], g[p + ".out"]));
  }
  EXPECT_CLOSE(out, g["out"], kTol);
  std::cout << c.version << " " << c.name << ": estimator x_in " << dx << ", out " << dout << ", final "
            << test::max_abs_diff(out, g["out"]) << "\n";

  // The plain call with a fresh generator of the same seed gives the same patch.
  at::Generator gen2 = at::detail::createCPUGenerator(g.meta["seed"].get<uint64_t>());
  EXPECT_TRUE(at::equal(cfm(g["mu"], n, g["cond"], cfg_value, gen2), out));
}

INSTANTIATE_TEST_SUITE_P(Cases, CfmGolden,
                         ::testing::Values(CfmCase{"v1", "cfm_t10"}, CfmCase{"v1", "cfm_t5"},
                                           CfmCase{"v1.5", "cfm_t10"}, CfmCase{"v1.5", "cfm_t5"},
                                           CfmCase{"v2", "cfm_t10"}, CfmCase{"v2", "cfm_t5"}),
                         [](const auto& info) {
                           std::string v = info.param.version == "v1.5" ? "v1_5" : info.param.version;
                           return v + "_" + info.param.name;
                         });

class CfmBf16 : public ::testing::TestWithParam<std::string> {};

// bfloat16 model: the bf16 draw (its own stream, not the rounded float32 one) and the bf16
// schedule match exactly; the patch is within bf16 noise (the reference attention upcasts to
// float32, ours runs in bf16).
TEST_P(CfmBf16, MatchesOfficialLoosely) {
  const std::string v = GetParam();
  const Tiny m = load_tiny(v);
  const test::Golden g = test::load_golden(v, "cfm_t10_bf16");
  const ModuleOptions o{at::kBFloat16, at::kCPU};
  const LocDiT dit(m.weights, m.cfg, o);
  const UnifiedCFM cfm(dit, m.cfg, o);
  at::Generator gen = at::detail::createCPUGenerator(g.meta["seed"].get<uint64_t>());
  CfmTrace trace;
  const at::Tensor out = cfm.sample(g["mu"].to(at::kBFloat16), g.meta["n_timesteps"].get<int64_t>(),
                                    g["cond"].to(at::kBFloat16), g.meta["cfg_value"].get<double>(), gen, &trace);
  ASSERT_EQ(out.scalar_type(), at::kBFloat16);
  EXPECT_CLOSE(trace.noise, g["noise"], 0.0);
  EXPECT_CLOSE(trace.t_span, g["t_span"], 0.0);
  double dout = 0;
  for (size_t j = 0; j < trace.out.size(); ++j)
    dout = std::max(dout, test::max_abs_diff(trace.out[j], g["estimator_call" + std::to_string(j) + ".out"]));
  const double d = test::max_abs_diff(out, g["out"]);
  std::cout << v << " cfm_t10_bf16: estimator out max diff " << dout << ", final max diff " << d
            << " (|out| max " << g["out"].abs().max().item<float>() << ")\n";
  EXPECT_LE(d, 0.2);
}

INSTANTIATE_TEST_SUITE_P(Versions, CfmBf16, ::testing::Values("v1", "v1.5", "v2"),
                         [](const auto& info) { return info.param == "v1.5" ? std::string("v1_5") : info.param; });

TEST(Cfm, Bf16ScheduleMatchesSpec) {
  const Tiny m = load_tiny("v2");
  const ModuleOptions o{at::kBFloat16, at::kCPU};
  const LocDiT dit(m.weights, m.cfg, o);
  const UnifiedCFM cfm(dit, m.cfg, o);
  // spec §3.7: the t values used for n = 10 (t advanced by subtraction equals t_span here).
  const std::vector<double> expected = {1.0,       0.953125, 0.91015625,  0.8515625,   0.7890625, 0.70703125,
                                        0.609375, 0.4921875, 0.349609375, 0.1884765625, 0.0};
  const at::Tensor t = cfm.schedule(10);
  ASSERT_EQ(t.scalar_type(), at::kBFloat16);
  EXPECT_CLOSE(t, at::tensor(expected, at::kDouble), 0.0);
}

TEST(Cfm, BadInputThrows) {
  const Tiny m = load_tiny("v2");
  const LocDiT dit(m.weights, m.cfg, ModuleOptions{});
  const UnifiedCFM cfm(dit, m.cfg, ModuleOptions{});
  at::Generator gen = at::detail::createCPUGenerator(1);
  const at::Tensor mu = at::zeros({1, 64}), cond = at::zeros({1, 64, 4});
  expect_error_containing([&] { cfm(mu, 0, cond, 2.0, gen); }, "timesteps must be at least 1");
  expect_error_containing([&] { cfm(at::zeros({1, 32}), 10, cond, 2.0, gen); }, "mu must be [B, 64]");
  expect_error_containing([&] { cfm(mu, 10, at::zeros({1, 64, 2}), 2.0, gen); }, "cond must be [1, 64, 4]");
  expect_error_containing([&] { cfm(at::zeros({2, 64}), 10, cond, 2.0, gen); }, "cond must be [2, 64, 4]");
  // n = 1: only the zero-velocity step, so the patch is the noise itself.
  at::Generator g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  EXPECT_TRUE(at::equal(cfm(mu, 1, cond, 2.0, g1), at::randn({1, 64, 4}, g2)));
}

}  // namespace

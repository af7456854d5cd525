// The engine on a CUDA device (built only against a libtorch with CUDA; skipped where no GPU is
// visible): the official goldens for every stage that the random draw does not touch, the
// AudioVAE decode and its stateful streaming, and whole requests in float32 and bfloat16.
// CUDA's Philox stream differs from the CPU's, so generated patches can't be compared with the
// CPU goldens; their noise-independent parts (prompt encode, prefill, the first step's inputs) can.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include "support/golden.h"
#include "voxcpm/audio_vae.h"
#include "voxcpm/error.h"
#include "voxcpm/locdit.h"
#include "voxcpm/locenc.h"
#include "voxcpm/model.h"
#include "voxcpm/stream.h"

using namespace voxcpm;

namespace {

// fp32 LM-side: cuBLAS in IEEE fp32 (torch's default), so only the summation order differs.
constexpr double kTol = 1e-4;
// The AudioVAE's convolutions run in cuDNN with TF32 allowed (torch's default, so also the
// official code's on a GPU): 10-bit mantissa products; the waveforms matched to 2e-3..6e-3 on an H200.
constexpr double kVaeTol = 1e-2;

#define SKIP_WITHOUT_GPU() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible"

const at::Device kCuda("cuda");

std::shared_ptr<const Model> load_tiny(const std::string& version, const std::string& dtype) {
  LoadOptions o;
  o.device = "cuda";
  o.dtype = dtype;
  return Model::load(test::tiny_model_dir(version), o);
}

// cuDNN held to IEEE fp32 while alive: what remains is summation order, as on a CPU.
struct NoTf32 {
  NoTf32() { at::globalContext().setAllowTF32CuDNN(false); }
  ~NoTf32() { at::globalContext().setAllowTF32CuDNN(true); }
};

void report(const std::string& what, double d) { std::printf("[ cuda diff ] %s: %.3g\n", what.c_str(), d); }

at::Tensor as_tensor(const std::vector<float>& v) {
  return at::from_blob(const_cast<float*>(v.data()), {1, static_cast<int64_t>(v.size())}, at::kFloat).clone();
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param == "v1.5" ? std::string("v1_5") : info.param;
}

class CudaGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGolden, ModulesMatchOfficial) {
  SKIP_WITHOUT_GPU();
  const std::string v = GetParam();
  const test::TinyParts m = test::load_tiny_parts(v);
  const test::Golden g = test::load_golden(v, "modules");
  const ModuleOptions o{at::kFloat, kCuda};
  const LocEnc enc(m.weights, m.cfg, o);
  const LocDiT dit(m.weights, m.cfg, o);
  const at::Tensor feat = enc(g["feat_encoder.input"].to(kCuda));
  ASSERT_TRUE(feat.is_cuda());
  EXPECT_CLOSE(feat.cpu(), g["feat_encoder.output"], kTol);
  report(v + " feat_encoder", test::max_abs_diff(feat.cpu(), g["feat_encoder.output"]));
  const at::Tensor out = dit(g["estimator.x"].to(kCuda), g["estimator.mu"].to(kCuda), g["estimator.t"].to(kCuda),
                             g["estimator.cond"].to(kCuda), g["estimator.dt"].to(kCuda));
  EXPECT_CLOSE(out.cpu(), g["estimator.out"], kTol);
  report(v + " estimator", test::max_abs_diff(out.cpu(), g["estimator.out"]));
}

TEST_P(CudaGolden, AudioVaeDecodeAndStreaming) {
  SKIP_WITHOUT_GPU();
  const std::string v = GetParam();
  const std::string dir = test::tiny_model_dir(v);
  const ModelConfig cfg = ModelConfig::load(dir + "/config.json");
  const AudioVAE vae(Weights::load(dir + "/audiovae.pth"), cfg.audio_vae, kCuda);
  const test::Golden g = test::load_golden(v, "vae");
  const at::Tensor full = vae.decode(g["decode.z"].to(kCuda));
  ASSERT_TRUE(full.is_cuda());
  EXPECT_CLOSE(full.cpu(), g["decode.audio"], kVaeTol);
  report(v + " vae decode", test::max_abs_diff(full.cpu(), g["decode.audio"]));
  at::Tensor exact;
  {
    // The difference is TF32 alone: with cuDNN held to IEEE fp32 the decode matches as on a CPU.
    const NoTf32 no_tf32;
    exact = vae.decode(g["decode.z"].to(kCuda));
    EXPECT_CLOSE(exact.cpu(), g["decode.audio"], kTol);
    report(v + " vae decode without TF32", test::max_abs_diff(exact.cpu(), g["decode.audio"]));
  }
  const at::Tensor mu = vae.encode(g["encode.wav"].unsqueeze(1).to(kCuda));
  EXPECT_CLOSE(mu.cpu(), g["encode.mu"], kVaeTol);
  report(v + " vae encode", test::max_abs_diff(mu.cpu(), g["encode.mu"]));

  // The stateful decoder on the GPU, in chunks of 1, one patch, and uneven sizes. cuDNN picks
  // its algorithm per shape, and not all of them use TF32, so with TF32 allowed a chunk differs
  // from the full decode by TF32 rounding; held to IEEE fp32 it is the full decode.
  const at::Tensor z = g["decode.z"].to(kCuda);
  const auto streamed = [&](const std::vector<int64_t>& sizes) {
    auto state = vae.new_decoder_state();
    std::vector<at::Tensor> parts;
    for (int64_t pos = 0, i = 0; pos < z.size(2); ++i) {
      const int64_t n = std::min(sizes[i % sizes.size()], z.size(2) - pos);
      parts.push_back(vae.decode_step(*state, z.narrow(2, pos, n)));
      pos += n;
    }
    return at::cat(parts, 2).cpu();
  };
  for (const std::vector<int64_t>& sizes :
       std::vector<std::vector<int64_t>>{{1}, {cfg.patch_size}, {3, 1, 5, 2}}) {
    const std::string name = v + " vae streamed (chunks of " + std::to_string(sizes[0]) + ") vs full";
    const at::Tensor tf32 = streamed(sizes);
    EXPECT_CLOSE(tf32, full.cpu(), kVaeTol);
    report(name, test::max_abs_diff(tf32, full.cpu()));
    const NoTf32 no_tf32;
    const at::Tensor ieee = streamed(sizes);
    EXPECT_CLOSE(ieee, exact.cpu(), 1e-5);
    report(name + " without TF32", test::max_abs_diff(ieee, exact.cpu()));
  }
}

// Everything up to the first random draw of a golden request: prompt encode, prefill and the
// first step's conditioning, in float32 (official fp32 run) and bfloat16 (official bf16 run).
void check_prefill(const std::string& v, const std::string& name, const std::string& dtype, double tol) {
  const test::Golden g = test::load_golden(v, name);
  auto model = load_tiny(v, dtype);
  ASSERT_TRUE(model->options().device.is_cuda());
  GenerationTrace tr;
  GenerateResult r = generate(model, g.meta["target_text"].get<std::string>(), test::golden_options(g), &tr);
  ASSERT_GT(r.steps, 0);
  const auto check = [&](const std::string& what, const at::Tensor& ours, const at::Tensor& ref) {
    ASSERT_EQ(ours.sizes(), ref.sizes()) << what;
    const double d = test::max_abs_diff(ours.cpu().to(at::kFloat), ref);
    report(v + "/" + name + " " + what, d);
    EXPECT_LE(d, tol) << what;
  };
  check("prefill.base_lm_hidden", tr.prefill_base_lm_hidden, g["prefill.base_lm_hidden"]);
  check("prefill.residual_lm_hidden", tr.prefill_residual_lm_hidden, g["prefill.residual_lm_hidden"]);
  check("prefill.feat_encoder_out", tr.prefill_feat_encoder_out, g["prefill.feat_encoder_out"]);
  check("steps.lm_hidden[0]", tr.lm_hidden[0], g["steps.lm_hidden"][0].unsqueeze(0));
  check("steps.dit_mu[0]", tr.dit_mu[0], g["steps.dit_mu"][0].unsqueeze(0));
  check("steps.stop_logits[0]", tr.stop_logits[0], g["steps.stop_logits"][0].unsqueeze(0));
  for (float s : r.waveform) ASSERT_TRUE(std::isfinite(s));
}

TEST_P(CudaGolden, PrefillMatchesOfficialFloat32) {
  SKIP_WITHOUT_GPU();
  check_prefill(GetParam(), "e2e_zeroshot", "float32", kTol);
}

TEST_P(CudaGolden, ClonePromptAndPrefillMatchOfficialFloat32) {
  SKIP_WITHOUT_GPU();
  // The prompt audio goes through the AudioVAE encoder first. With TF32 its ~1e-3 error grows
  // through the tiny random LM to ~5e-2 (seen on an H200), so this holds cuDNN to IEEE fp32.
  const NoTf32 no_tf32;
  check_prefill(GetParam(), "clone", "float32", 1e-3);
}

TEST_P(CudaGolden, PrefillMatchesOfficialBfloat16) {
  SKIP_WITHOUT_GPU();
  // The same bound as the CPU's bf16 dtype-flow check (test_generator): a few bf16 ulps.
  check_prefill(GetParam(), "e2e_zeroshot_bf16", "bfloat16", 0.1);
}

INSTANTIATE_TEST_SUITE_P(Versions, CudaGolden, ::testing::Values("v1", "v1.5", "v2"), param_name);

// Whole requests: the same seed gives the same audio, and streaming gives what the
// non-streaming call gives, in both dtypes.
class CudaRequest : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaRequest, SeededStreamingEqualsNonStreaming) {
  SKIP_WITHOUT_GPU();
  for (const std::string dtype : {"float32", "bfloat16"}) {
    auto model = load_tiny(GetParam(), dtype);
    GenerateOptions o;
    o.seed = 11;
    o.max_len = 12;
    o.retry_badcase = false;
    const std::string text = "hello world, this is a test.";
    const GenerateResult a = generate(model, text, o), b = generate(model, text, o);
    ASSERT_EQ(a.waveform.size(), b.waveform.size());
    EXPECT_EQ(test::max_abs_diff(as_tensor(a.waveform), as_tensor(b.waveform)), 0.0) << dtype;
    Synthesis s(model, text, o);
    std::vector<float> joined;
    while (auto c = s.next_chunk()) joined.insert(joined.end(), c->samples.begin(), c->samples.end());
    ASSERT_EQ(joined.size(), a.waveform.size()) << dtype;
    const double d = test::max_abs_diff(as_tensor(joined), as_tensor(a.waveform));
    report(GetParam() + " " + dtype + " streamed vs non-streamed", d);
    EXPECT_LE(d, kTol) << dtype;
    for (float x : joined) ASSERT_TRUE(std::isfinite(x));
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, CudaRequest, ::testing::Values("v1", "v1.5", "v2"), param_name);

TEST(Cuda, DeviceStrings) {
  SKIP_WITHOUT_GPU();
  EXPECT_TRUE(resolve_device("cuda:0").is_cuda());
  const std::string past = "cuda:" + std::to_string(at::getNumGPUs());
  test::expect_error_containing([&] { resolve_device(past); }, "visible");
  // dtype auto is the checkpoint's bfloat16 on a GPU.
  EXPECT_EQ(resolve_dtype("auto", "bfloat16", kCuda), at::kBFloat16);
}

}  // namespace

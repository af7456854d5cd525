// End-to-end parity with the official implementation on the tiny fixture models: every
// per-step tensor, the step count, the stop decisions and the waveform (spec §6, §7).
#include <gtest/gtest.h>

#include "support/golden.h"
#include "voxcpm/error.h"
#include "voxcpm/resample.h"
#include "voxcpm/stream.h"
#include "voxcpm/wav.h"

using namespace voxcpm;

namespace {

constexpr double kTol = 1e-4;

std::shared_ptr<const Model> load_tiny(const std::string& version, const std::string& dtype = "float32") {
  LoadOptions o;
  o.dtype = dtype;
  return Model::load(test::tiny_model_dir(version), o);
}


at::Tensor stack(const std::vector<at::Tensor>& v) { return at::stack(v).squeeze(1); }

// Runs one golden e2e case and compares everything it recorded.
void check_case(const std::string& version, const std::string& name, bool trim_context = true,
                double wave_tol = kTol) {
  test::Golden g = test::load_golden(version, name);
  auto model = load_tiny(version);
  GenerateOptions o = test::golden_options(g);
  o.trim_context = trim_context;
  const std::string text = g.meta["target_text"].get<std::string>();

  // Inputs of the prefill (spec §6).
  PromptCache cache = build_prompt_cache(*model, o);
  if (g.tensors.count("prompt.audio_feat")) EXPECT_CLOSE(cache.audio_feat, g["prompt.audio_feat"], kTol);
  if (g.tensors.count("reference.audio_feat")) EXPECT_CLOSE(cache.ref_audio_feat, g["reference.audio_feat"], kTol);
  SequenceInputs in = build_inputs(*model, text, cache, o);
  EXPECT_TRUE(at::equal(in.tokens, g["inference.text_tokens"]));
  EXPECT_TRUE(at::equal(in.text_mask.to(at::kLong), g["inference.text_mask"]));
  EXPECT_TRUE(at::equal(in.audio_mask.to(at::kLong), g["inference.audio_mask"]));
  EXPECT_CLOSE(in.feats, g["inference.audio_feat"], kTol);
  EXPECT_EQ(in.max_steps, g.meta["effective_max_len"].get<int64_t>());

  GenerationTrace tr;
  GenerateResult r = generate(model, text, o, &tr);
  const int64_t n = g.meta["n_steps"].get<int64_t>();
  ASSERT_EQ(r.steps, n) << "step count differs";
  EXPECT_EQ(tr.stop_flags, g.meta["stop_flags_per_step"].get<std::vector<int>>());
  EXPECT_EQ(r.stopped_by_head, g.meta["stopped_by"].get<std::string>() == "stop_head");

  EXPECT_CLOSE(tr.prefill_base_lm_hidden, g["prefill.base_lm_hidden"], kTol);
  EXPECT_CLOSE(tr.prefill_residual_lm_hidden, g["prefill.residual_lm_hidden"], kTol);
  EXPECT_CLOSE(tr.prefill_feat_encoder_out, g["prefill.feat_encoder_out"], kTol);
  EXPECT_CLOSE(stack(tr.cond).transpose(1, 2), g["steps.cond"], kTol);
  EXPECT_CLOSE(stack(tr.dit_mu), g["steps.dit_mu"], kTol);
  EXPECT_CLOSE(stack(tr.lm_hidden), g["steps.lm_hidden"], kTol);
  EXPECT_CLOSE(stack(tr.pred_patch), g["steps.pred_patch"], kTol);
  EXPECT_CLOSE(stack(tr.stop_logits), g["steps.stop_logits"], kTol);
  EXPECT_CLOSE(stack(tr.base_lm_step_in), g["steps.base_lm_step_in"], kTol);
  EXPECT_CLOSE(stack(tr.base_lm_step_out), g["steps.base_lm_step_out"], kTol);
  EXPECT_CLOSE(stack(tr.residual_lm_step_in), g["steps.residual_lm_step_in"], kTol);
  EXPECT_CLOSE(stack(tr.residual_lm_step_out), g["steps.residual_lm_step_out"], kTol);
  if (g.tensors.count("generated_feat")) EXPECT_CLOSE(r.generated_feat, g["generated_feat"], kTol);

  at::Tensor wave = at::from_blob(r.waveform.data(), {1, static_cast<int64_t>(r.waveform.size())}, at::kFloat);
  EXPECT_EQ(r.sample_rate, g.meta["output_sample_rate"].get<int64_t>());
  EXPECT_CLOSE(wave, g["waveform"], wave_tol);
  std::printf("[%s/%s] steps %lld, waveform max abs diff %.3g\n", version.c_str(), name.c_str(),
              static_cast<long long>(r.steps), test::max_abs_diff(wave, g["waveform"]));
}

}  // namespace

TEST(GeneratorV15, ZeroShot) { check_case("v1.5", "e2e_zeroshot"); }
TEST(GeneratorV15, Clone) { check_case("v1.5", "clone"); }
TEST(GeneratorV15, CloneOldGenerateKeepsContextAudio) { check_case("v1.5", "clone_generate", /*trim=*/false); }

TEST(GeneratorV1, ZeroShot) { check_case("v1", "e2e_zeroshot"); }
TEST(GeneratorV1, Clone) { check_case("v1", "clone"); }
TEST(GeneratorV1, CloneOldGenerateKeepsContextAudio) { check_case("v1", "clone_generate", /*trim=*/false); }
TEST(GeneratorV2, ZeroShot) { check_case("v2", "e2e_zeroshot"); }
TEST(GeneratorV2, Clone) { check_case("v2", "clone"); }
TEST(GeneratorV2, Reference) { check_case("v2", "reference"); }
TEST(GeneratorV2, ReferenceAndContinuation) { check_case("v2", "reference_clone"); }

// The bf16 goldens are a dtype-flow check (fixtures README §3): the official run used an
// fp32-upcasting attention, as ours does. Where the platform's bf16 kernels round as the
// reference's did (this machine class: every LM-side tensor bit-identical), the whole run must
// follow the official one. Elsewhere (seen: torch 2.11 on an AMX CPU) a few ulps of difference
// grow over the free-running steps and can move the random stop head, so only what precedes
// the first random draw is held to the bf16 bound; the stage-by-stage check is ModulesBf16.
void check_bf16_case(const std::string& version) {
  test::Golden g = test::load_golden(version, "e2e_zeroshot_bf16");
  auto model = load_tiny(version, "bfloat16");
  ASSERT_EQ(model->options().dtype, at::kBFloat16);
  GenerationTrace tr;
  GenerateResult r = generate(model, g.meta["target_text"].get<std::string>(), test::golden_options(g), &tr);
  ASSERT_FALSE(tr.dit_mu.empty());
  const double prefill = std::max(test::max_abs_diff(tr.prefill_base_lm_hidden, g["prefill.base_lm_hidden"]),
                                  test::max_abs_diff(tr.prefill_residual_lm_hidden, g["prefill.residual_lm_hidden"]));
  const double first_mu = test::max_abs_diff(tr.dit_mu[0], g["steps.dit_mu"][0].unsqueeze(0));
  std::printf("[%s/e2e_zeroshot_bf16] prefill max abs diff %.3g, first step mu %.3g\n", version.c_str(), prefill,
              first_mu);
  EXPECT_LE(prefill, 0.1);
  EXPECT_LE(first_mu, 0.1);
  if (prefill != 0.0) {
    std::printf("[%s/e2e_zeroshot_bf16] this platform's bf16 kernels round differently: free-running steps not "
                "compared\n", version.c_str());
    return;
  }
  ASSERT_EQ(r.steps, g.meta["n_steps"].get<int64_t>());
  EXPECT_EQ(tr.stop_flags, g.meta["stop_flags_per_step"].get<std::vector<int>>());
  const double hidden = test::max_abs_diff(stack(tr.lm_hidden), g["steps.lm_hidden"]);
  const double patches = test::max_abs_diff(stack(tr.pred_patch), g["steps.pred_patch"]);
  at::Tensor wave = at::from_blob(r.waveform.data(), {1, static_cast<int64_t>(r.waveform.size())}, at::kFloat);
  const double waveform = test::max_abs_diff(wave, g["waveform"]);
  std::printf("[%s/e2e_zeroshot_bf16] steps %lld; max abs diff: lm_hidden %.3g, patches %.3g, waveform %.3g\n",
              version.c_str(), static_cast<long long>(r.steps), hidden, patches, waveform);
  EXPECT_LE(hidden, 0.1);
  EXPECT_LE(patches, 0.2);
  EXPECT_LE(waveform, 0.05);
}

TEST(GeneratorV15, Bfloat16MatchesTheOfficialBfloat16Run) { check_bf16_case("v1.5"); }
TEST(GeneratorV1, Bfloat16MatchesTheOfficialBfloat16Run) { check_bf16_case("v1"); }
TEST(GeneratorV2, Bfloat16MatchesTheOfficialBfloat16Run) { check_bf16_case("v2"); }

TEST(GeneratorV2, VoiceDesignIsADescriptionInParentheses) {
  // VoxCPM2 voice design: "(description)text", tokenized as plain text (spec §6, §9).
  auto model = load_tiny("v2");
  GenerateOptions o;
  o.seed = 4;
  o.max_len = 4;
  o.retry_badcase = false;
  SequenceInputs plain = build_inputs(*model, "hello world", PromptCache{}, o);
  SequenceInputs design = build_inputs(*model, "(a calm voice)hello world", PromptCache{}, o);
  EXPECT_GT(design.tokens.size(1), plain.tokens.size(1));
  EXPECT_EQ(design.tokens[0][-1].item<int64_t>(), 101);
  GenerateResult r = generate(model, "(a calm voice)hello world", o);
  EXPECT_GT(r.waveform.size(), 0u);
  EXPECT_EQ(r.sample_rate, 48000);
}

TEST(GeneratorV2, PromptAtAnotherRateIsResampledToTheEncoderRate) {
  // The 16 kHz fixture prompt, upsampled to 48 kHz, comes back to nearly the same latents
  // (channel mixdown is covered by the WAV tests).
  auto model = load_tiny("v2");
  const std::string dir = test::make_temp_dir();
  Audio a = read_wav(test::fixtures_dir() + "/golden-v2/prompt.wav");
  std::vector<float> up = resample(a.samples, 16000, 48000);
  write_wav(dir + "/prompt48.wav", up.data(), up.size(), 48000, SampleFormat::F32);
  GenerateOptions o;
  o.prompt_wav_path = dir + "/prompt48.wav";
  o.prompt_text = "this is a test.";
  PromptCache c = build_prompt_cache(*model, o);
  test::Golden g = test::load_golden("v2", "clone");
  ASSERT_EQ(c.audio_feat.sizes(), g["prompt.audio_feat"].sizes());
  const double d = test::max_abs_diff(c.audio_feat, g["prompt.audio_feat"]);
  std::printf("[v2] 16k prompt up- and down-sampled: latent max abs diff %.3g\n", d);
  EXPECT_LE(d, 0.1);
}

TEST(GeneratorV15, SeedIsReproducibleAndRetryUsesNextSeed) {
  auto model = load_tiny("v1.5");
  GenerateOptions o;
  o.seed = 7;
  o.min_len = 2;
  o.max_len = 6;
  o.retry_badcase = false;
  GenerateResult a = generate(model, "hello world", o), b = generate(model, "hello world", o);
  EXPECT_EQ(a.waveform, b.waveform);
  EXPECT_EQ(a.seed, 7u);
  // With a threshold that every output exceeds, all attempts run and the last seed is used.
  o.retry_badcase = true;
  o.retry_badcase_ratio_threshold = 0.01;
  o.retry_badcase_max_times = 3;
  GenerateResult c = generate(model, "hello world", o);
  EXPECT_EQ(c.attempts, 3);
  EXPECT_EQ(c.seed, 9u);
  o.retry_badcase = false;
  o.seed = 9;
  EXPECT_EQ(generate(model, "hello world", o).waveform, c.waveform);
}

TEST(GeneratorV15, LengthCapFollowsTargetText) {
  auto model = load_tiny("v1.5");
  GenerateOptions o;
  o.seed = 1;
  o.min_len = 1000;  // the stop head may never end it: only the caps do
  o.retry_badcase = false;
  SequenceInputs in = build_inputs(*model, "hello", PromptCache{}, o);
  EXPECT_EQ(in.max_steps, static_cast<int64_t>(in.target_ids.size() * 6.0 + 10));
  o.max_len = 5;
  GenerateResult r = generate(model, "hello", o);
  EXPECT_EQ(r.steps, 5);
  EXPECT_FALSE(r.stopped_by_head);
  EXPECT_EQ(static_cast<int64_t>(r.waveform.size()), 5 * model->samples_per_patch());
}

TEST(GeneratorV15, BadInputIsAClearError) {
  auto model = load_tiny("v1.5");
  GenerateOptions o;
  o.seed = 1;
  EXPECT_THROW(generate(model, "", o), Error);
  EXPECT_THROW(generate(model, " \n\t ", o), Error);
  EXPECT_THROW(generate(model, std::string("bad \xC3\x28 utf8"), o), Error);
  GenerateOptions p = o;
  p.prompt_wav_path = test::fixtures_dir() + "/golden-v1.5/prompt.wav";  // without its transcript
  EXPECT_THROW(generate(model, "hello", p), Error);
  p.prompt_text = "this is a test.";
  p.prompt_wav_path = "/nonexistent/prompt.wav";
  EXPECT_THROW(generate(model, "hello", p), Error);
  GenerateOptions r = o;
  r.reference_wav_path = test::fixtures_dir() + "/golden-v1.5/prompt.wav";
  try {
    generate(model, "hello", r);
    FAIL() << "reference audio accepted by a VoxCPM1.5 model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("VoxCPM2"), std::string::npos) << e.what();
  }
  GenerateOptions t = o;
  t.inference_timesteps = 0;
  EXPECT_THROW(generate(model, "hello", t), Error);
  t = o;
  t.cfg_value = std::nan("");
  EXPECT_THROW(generate(model, "hello", t), Error);
}

TEST(ModelLoad, MissingOrBrokenModelDirectoryIsAClearError) {
  EXPECT_THROW(Model::load("/nonexistent/model"), Error);
  std::string dir = test::make_temp_dir();
  try {
    Model::load(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  LoadOptions o;
  o.device = "tpu";
  EXPECT_THROW(Model::load(test::tiny_model_dir("v1.5"), o), Error);
  o.device = "cpu";
  o.dtype = "int8";
  EXPECT_THROW(Model::load(test::tiny_model_dir("v1.5"), o), Error);
}

TEST(ModelLoad, ReportsVersionRateAndSize) {
  auto model = load_tiny("v1.5");
  EXPECT_EQ(model->version_name(), "VoxCPM1.5");
  EXPECT_EQ(model->sample_rate(), 44100);
  EXPECT_EQ(model->samples_per_patch(), 7056);
  EXPECT_GT(model->parameter_count(), 0);
}

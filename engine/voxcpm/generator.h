// Text (+ optional prompt audio) → latent patches → waveform: the generation loop of the
// official implementation (spec §6, §7), with per-request state so that requests can run
// concurrently on one shared Model.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>

#include "voxcpm/model.h"
#include "voxcpm/stage_times.h"

namespace voxcpm {

struct GenerateOptions {
  int64_t inference_timesteps = 10;
  double cfg_value = 2.0;
  int64_t min_len = 2;
  int64_t max_len = 4096;
  bool retry_badcase = true;  // non-streaming only; retries use seed+1, seed+2, ...
  int64_t retry_badcase_max_times = 3;
  double retry_badcase_ratio_threshold = 6.0;
  std::optional<uint64_t> seed;  // none: a random one (reported in the result)
  std::string prompt_wav_path, prompt_text;  // continuation cloning (both or neither)
  std::string reference_wav_path;            // VoxCPM2 isolated reference
  bool normalize_whitespace = true;  // §5.1 rules on the target text, as VoxCPM.generate applies
  // false: the old model-level `generate(prompt_text, prompt_wav_path)` that keeps the audio of
  // the prompt-context patches at the start of the waveform (VoxCPM-0.5B/1.5).
  bool trim_context = true;
  int64_t streaming_prefix_len = 0;  // 0: the version's default (3; 4 for VoxCPM2)
  // Longer texts are split into sentences of at most this many tokens, generated back to back
  // (0: as long as the model's context allows; see stream.h).
  int64_t max_segment_tokens = 0;

  void validate() const;  // throws Error naming the bad option
};

// Prompt/reference audio encoded to latent patches [A, P, D] (float32, CPU), spec §4.
struct PromptCache {
  std::string prompt_text;
  at::Tensor audio_feat;      // continuation prompt (left-padded), may be undefined
  at::Tensor ref_audio_feat;  // VoxCPM2 reference (right-padded), may be undefined
};
PromptCache build_prompt_cache(const Model& model, const GenerateOptions& opts, StageTimes* times = nullptr);
// Encodes a mono waveform at any rate: resample to the encoder rate, pad to whole patches on
// the left (prompt) or right (reference), AudioVAE encode, split into patches [A, P, D].
at::Tensor encode_audio_patches(const Model& model, std::vector<float> samples, int64_t rate, bool pad_left);

// The prefill inputs of spec §6 (batch 1) plus what the loop needs to know about them.
struct SequenceInputs {
  at::Tensor tokens;      // [1,T] int64
  at::Tensor text_mask;   // [1,T] int32
  at::Tensor audio_mask;  // [1,T] int32
  at::Tensor feats;       // [1,T,P,D] model dtype, on the model device
  std::vector<int64_t> target_ids;  // ids of the target text alone (length cap, retries)
  int64_t context_patches = 0;      // prompt patches prepended to the output for the VAE (§7.6)
  int64_t max_steps = 0;            // min(int(len(target)*ratio + 10), max_len)
};
SequenceInputs build_inputs(const Model& model, const std::string& target_text, const PromptCache& cache,
                            const GenerateOptions& opts);

// Per-step values of one generation, for parity tests and diagnostics.
struct GenerationTrace {
  at::Tensor prefill_base_lm_hidden, prefill_residual_lm_hidden, prefill_feat_encoder_out;
  std::vector<at::Tensor> cond, dit_mu, lm_hidden, pred_patch, stop_logits;
  std::vector<at::Tensor> base_lm_step_in, base_lm_step_out, residual_lm_step_in, residual_lm_step_out;
  std::vector<int> stop_flags;
};

// One request's autoregressive state: KV caches, random generator, conditioning. Not thread
// safe itself (one thread drives it), but any number may run at once on one Model.
class Generation {
 public:
  // `cancel_flag` (optional) is polled like cancel(): a request-wide flag set from another thread.
  Generation(std::shared_ptr<const Model> model, const SequenceInputs& inputs, const GenerateOptions& opts,
             uint64_t seed, GenerationTrace* trace = nullptr, const std::atomic<bool>* cancel_flag = nullptr);
  // The next latent patch [1,P,D] (model dtype), or nullopt once the stop head fired or
  // max_steps patches were made. The first call runs the prefill. The LMs take in a patch at
  // the start of the following call (same results), so that each patch, and its audio, is out
  // before that part of the step. Throws Cancelled.
  std::optional<at::Tensor> next_patch();
  bool finished() const { return finished_; }
  int64_t steps() const { return step_; }
  bool stopped_by_head() const { return stopped_by_head_; }
  // Bytes held for this request (KV caches; zero before the prefill).
  size_t state_bytes() const;
  // Safe from any thread: the running or next step throws Cancelled.
  void cancel() { cancelled_.store(true); }
  // Per-stage wall time of the prefill and the steps is added to `times` (null: not timed).
  void set_stage_times(StageTimes* times) { times_ = times; }

 private:
  void prefill();
  void advance();
  at::Tensor dit_condition() const;
  at::Tensor fuse(const at::Tensor& lm, const at::Tensor& feat_embed) const;

  std::shared_ptr<const Model> model_;
  SequenceInputs inputs_;
  GenerateOptions opts_;
  at::Generator gen_;
  GenerationTrace* trace_;
  StageTimes* times_ = nullptr;
  KVCache base_cache_, residual_cache_;
  at::Tensor lm_hidden_, residual_hidden_, cond_;
  int64_t step_ = 0;
  bool prefilled_ = false, finished_ = false, stopped_by_head_ = false, advance_pending_ = false;
  std::atomic<bool> cancelled_{false};
  const std::atomic<bool>* cancel_flag_;
  bool cancel_requested() const { return cancelled_.load() || (cancel_flag_ && cancel_flag_->load()); }
};

}  // namespace voxcpm

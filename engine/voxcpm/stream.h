// Streaming synthesis: one request = text (+ prompt) → audio chunks, one per generated patch,
// each available as soon as that patch is decoded. The AudioVAE decoder runs statefully
// (spec §8.3), so the concatenated chunks equal the non-streaming waveform. Long text is split
// into sentences that are generated back to back with contiguous sample offsets.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "voxcpm/audio_vae.h"
#include "voxcpm/generator.h"
#include "voxcpm/model.h"

namespace voxcpm {

struct GenerateResult {
  std::vector<float> waveform;  // mono float32 at sample_rate, in [-1, 1]
  int64_t sample_rate = 0;
  at::Tensor generated_feat;    // [N(+context), P, D] float32 CPU, as the official API returns it
  int64_t steps = 0;            // generated patches of the final attempt(s)
  bool stopped_by_head = false;
  uint64_t seed = 0;            // seed of the final attempt (of the first segment)
  int attempts = 1;
  std::vector<int64_t> target_ids;
  int64_t segments = 1;
};

// The whole non-streaming call (`VoxCPM.generate`): prompt encoding, seeding, retries, decode,
// context trim. Runs the same machinery as streaming (Synthesis in Whole mode).
GenerateResult generate(const std::shared_ptr<const Model>& model, const std::string& text,
                        const GenerateOptions& opts, GenerationTrace* trace = nullptr);

struct AudioChunk {
  std::vector<float> samples;  // mono float32 at the model's sample rate
  int64_t offset = 0;          // sample offset of samples[0] from the start of the request
  int64_t index = 0;           // 0, 1, 2, ... over the whole request
  int64_t segment = 0;         // which text segment (sentence) it belongs to
  bool last = false;           // no chunk follows
};

class Synthesis {
 public:
  enum class Mode {
    Streaming,  // a chunk per generated patch; no badcase retries (as the official streaming API)
    Whole,      // each segment fully generated (with retries), then decoded: one chunk per segment
  };

  // Cheap: validates the options and splits the text; prompt encoding and the first prefill
  // happen in the first next_chunk(). Throws Error on bad options or empty text.
  Synthesis(std::shared_ptr<const Model> model, const std::string& text, const GenerateOptions& opts,
            Mode mode = Mode::Streaming);
  ~Synthesis();
  Synthesis(const Synthesis&) = delete;
  Synthesis& operator=(const Synthesis&) = delete;

  // Computes until the next chunk is decoded; nullopt after the last one. Throws Cancelled once
  // cancel() was called (from any thread), within one model step.
  std::optional<AudioChunk> next_chunk();
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  int64_t sample_rate() const { return model_->sample_rate(); }
  const std::vector<std::string>& segments() const { return segments_; }
  uint64_t seed() const { return seed_; }               // seed of segment 0 (segment k uses seed + k)
  int64_t model_steps() const { return model_steps_; }  // generated patches so far (incl. retries)
  // steps/seed/attempts/generated_feat of each finished segment, in order.
  const std::vector<GenerateResult>& segment_results() const { return results_; }

  // Bytes of per-request state: KV caches of the running segment and the decoder history.
  size_t state_bytes() const;

  // For parity tests: record the per-step values of the segments' final attempts.
  void set_trace(GenerationTrace* trace) { trace_ = trace; }
  // For benchmarks: add the wall time of every stage (prompt encoding, prefill, steps, AudioVAE
  // decode) of all attempts to `times` (null: nothing is timed, no clock is read).
  void set_stage_times(StageTimes* times) { times_ = times; }

 private:
  struct Segment;
  std::optional<AudioChunk> emit(std::vector<float> samples, bool last);
  void start_segment();
  void finish_segment();
  at::Tensor decode(const at::Tensor& patches);  // [n,P,D] model dtype → samples through the decoder state

  std::shared_ptr<const Model> model_;
  GenerateOptions opts_;
  Mode mode_;
  std::vector<std::string> segments_;
  uint64_t seed_ = 0;
  size_t next_segment_ = 0;
  PromptCache prompt_;
  bool prompt_ready_ = false;
  std::unique_ptr<Segment> seg_;
  std::unique_ptr<AudioVAE::DecoderState> decoder_;
  std::vector<float> pending_context_;  // context audio to emit first (trim_context = false)
  GenerationTrace* trace_ = nullptr;
  StageTimes* times_ = nullptr;
  std::vector<GenerateResult> results_;
  int64_t offset_ = 0, index_ = 0, model_steps_ = 0;
  bool done_ = false;
  std::atomic<bool> cancelled_{false};
};

}  // namespace voxcpm

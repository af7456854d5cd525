// Optional per-stage wall-clock accounting of one request, for benchmarks and profiling. A
// request given no StageTimes reads no clock (the scopes test a null pointer and do nothing).
// Times are host wall time: on a GPU, kernels run asynchronously and land in whichever stage
// next waits for them, unless `sync_cuda_device` names the GPU to wait for at each stage's start
// and end (benchmarks; it removes the little overlap of host and device work between stages).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace voxcpm {

enum class Stage : int {
  PromptEncode,       // AudioVAE encode of prompt/reference audio
  PrefillLocEnc,      // LocEnc + enc_to_lm_proj over the prompt's audio positions
  PrefillBaseLM,      // base LM over the whole prefix (+ FSQ)
  PrefillResidualLM,  // residual LM over the whole prefix
  LocDiT,             // per step: DiT conditioning + the CFM sampler (all LocDiT calls)
  StopHead,           // per step: stop predictor (and its host sync)
  LocEnc,             // per step: LocEnc + enc_to_lm_proj of the new patch
  BaseLM,             // per step: base LM (+ FSQ)
  ResidualLM,         // per step: fusion + residual LM
  VaeDecode,          // AudioVAE decode (streaming: one patch; whole: the segment)
  kCount
};

constexpr int kStageCount = static_cast<int>(Stage::kCount);

inline const char* stage_name(Stage s) {
  switch (s) {
    case Stage::PromptEncode: return "prompt_encode";
    case Stage::PrefillLocEnc: return "prefill_locenc";
    case Stage::PrefillBaseLM: return "prefill_base_lm";
    case Stage::PrefillResidualLM: return "prefill_residual_lm";
    case Stage::LocDiT: return "locdit_cfm";
    case Stage::StopHead: return "stop_head";
    case Stage::LocEnc: return "locenc";
    case Stage::BaseLM: return "base_lm";
    case Stage::ResidualLM: return "residual_lm";
    case Stage::VaeDecode: return "vae_decode";
    case Stage::kCount: break;
  }
  return "?";
}

// Waits until the CUDA device `index` has finished its queued work (no-op without CUDA).
void synchronize_cuda_device(int index);

struct StageTimes {
  std::array<double, kStageCount> seconds{};
  std::array<int64_t, kStageCount> calls{};
  int sync_cuda_device = -1;  // >= 0: StageScope synchronizes that GPU before reading the clock

  double operator[](Stage s) const { return seconds[static_cast<size_t>(s)]; }
  int64_t count(Stage s) const { return calls[static_cast<size_t>(s)]; }
  void add(Stage s, double sec) {
    seconds[static_cast<size_t>(s)] += sec;
    ++calls[static_cast<size_t>(s)];
  }
  void clear() {
    seconds = {};
    calls = {};
  }
};

// Adds the time from construction to destruction to `times` (if not null) under `stage`.
class StageScope {
 public:
  StageScope(StageTimes* times, Stage stage) : times_(times), stage_(stage) {
    if (!times_) return;
    if (times_->sync_cuda_device >= 0) synchronize_cuda_device(times_->sync_cuda_device);
    start_ = std::chrono::steady_clock::now();
  }
  ~StageScope() {
    if (!times_) return;
    if (times_->sync_cuda_device >= 0) synchronize_cuda_device(times_->sync_cuda_device);
    times_->add(stage_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  StageScope(const StageScope&) = delete;
  StageScope& operator=(const StageScope&) = delete;

 private:
  StageTimes* times_;
  Stage stage_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace voxcpm

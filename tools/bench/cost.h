// Analytic cost of each generation stage (bytes moved, floating-point operations) from the
// model config, for achieved-throughput and roofline figures. Weights are counted once per
// call (they do not fit in cache: a VoxCPM1.5 transformer layer is 57 MB in float32);
// activations only where they are not negligible (KV cache reads, the AudioVAE decoder).
#pragma once

#include <cstdint>
#include <vector>

#include <c10/core/ScalarType.h>

#include "voxcpm/config.h"
#include "voxcpm/stage_times.h"

namespace voxcpm::bench {

struct Cost {
  double bytes = 0, flops = 0;
  Cost& operator+=(const Cost& o) {
    bytes += o.bytes;
    flops += o.flops;
    return *this;
  }
};

struct CostModel {
  ModelConfig config;
  at::ScalarType dtype = at::kFloat;  // LM-side compute dtype (the AudioVAE is float32)
  int64_t timesteps = 10;
  // Bytes per stored LM matrix weight (0: those of `dtype`). The CPU float32 path keeps a
  // bfloat16 checkpoint's matrices in bfloat16 (cpu_linear.h): 2 bytes read per weight.
  double weight_elem_bytes = 0;

  // One call of `stage`: a generation step for the per-step stages (LocDiT = all sampler calls of
  // the step), one patch for VaeDecode; the prefill stages for `prefix` positions of which
  // `audio` are audio. `context`: filled KV positions an LM step attends over.
  Cost stage(Stage s, int64_t context, int64_t prefix = 0, int64_t audio = 0) const;
  // The same work as the parts that must run one after the other (each needs the previous one's
  // output), for a roofline that cannot overlap one part's memory traffic with another's
  // arithmetic: the AudioVAE decoder's layers; one part for the other stages, whose layers all
  // have the same bound.
  std::vector<Cost> stage_parts(Stage s, int64_t context, int64_t prefix = 0, int64_t audio = 0) const;
  // Number of LocDiT calls per step (the first CFG-zero* steps skip the network).
  int64_t locdit_calls() const;
  // Parameters per module (for the report).
  double transformer_params(const TransformerConfig& t) const;
  double vae_decoder_params() const;
  double weight_bytes() const;  // all LM-side weights in `dtype` + the AudioVAE in float32
};

// Roofline time: the larger of moving the bytes at `gbs` and doing the flops at `gflops`.
inline double roofline_seconds(const Cost& c, double gbs, double gflops) {
  const double a = gbs > 0 ? c.bytes / (gbs * 1e9) : 0, b = gflops > 0 ? c.flops / (gflops * 1e9) : 0;
  return a > b ? a : b;
}

// Roofline of parts run one after the other: the sum of their rooflines.
double roofline_seconds(const std::vector<Cost>& parts, double gbs, double gflops);
Cost total_of(const std::vector<Cost>& parts);

}  // namespace voxcpm::bench

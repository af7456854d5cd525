// Machine probe: what this CPU (or GPU) reaches through libtorch, measured in the same run as
// the benchmark, so that stage times can be read against real peaks rather than data sheets.
#pragma once

#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

namespace voxcpm::bench {

struct MachineProbe {
  std::string cpu_model, cpu_flags;  // flags: the SIMD ones that matter here (avx2, avx512*, amx*)
  int logical_cpus = 0, torch_threads = 0;
  std::string openblas_coretype_env;  // OPENBLAS_CORETYPE as set for this process ("" = unset)
  std::string openblas_core;          // the kernel set OpenBLAS chose (openblas_get_corename), if linked
  std::string device;
  double mem_read_gbs = 0;             // streaming read (sum of a 512 MiB float tensor)
  double gemm_f32_gflops = 0, gemm_bf16_gflops = 0;  // large square matmul
  double gemm_skinny_f32_gflops = 0;   // [18 x 1024] x [1024 x 4096]: the LocDiT shape
  double gemv_f32_gbs = 0, gemv_bf16_gbs = 0;        // 4096x4096 matrix-vector (at::mv), out of cache
  double linear1_f32_gbs = 0, linear1_bf16_gbs = 0;  // same through at::linear with one row (the LM step path)
  double seconds = 0;                  // time the probe took

  nlohmann::json to_json() const;
};

// Streaming read of a fresh `bytes`-sized float tensor (a sum), best of `reps` calls or about
// `budget` seconds, in GB/s: the probe's memory figure, also measured between benchmark runs.
double measure_read_gbs(const c10::Device& device, int64_t bytes, int reps, double budget);

// Square matmul of size n in `dtype`, best of `reps` calls or about `budget` seconds, in GFLOP/s:
// the probe's GEMM figure, also measured between benchmark runs.
double measure_gemm_gflops(const c10::Device& device, c10::ScalarType dtype, int64_t n, int reps, double budget);

// The square size of the probe's GEMM in `dtype` (smaller for bfloat16, which CPUs without native
// bf16 run at a few GFLOP/s; `quick`: for tests).
int64_t gemm_probe_size(c10::ScalarType dtype, bool quick);

// `quick`: smaller sizes and fewer repetitions (tests). Runs on `device`.
MachineProbe probe_machine(const c10::Device& device, bool quick);

}  // namespace voxcpm::bench

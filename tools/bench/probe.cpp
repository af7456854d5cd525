#include "bench/probe.h"

#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <ATen/Parallel.h>

#include "voxcpm/stage_times.h"

namespace voxcpm::bench {
namespace {

using Clock = std::chrono::steady_clock;

void sync(const c10::Device& d, const at::Tensor&) {
  if (d.is_cuda()) synchronize_cuda_device(d.has_index() ? d.index() : 0);
}

// Best time of `fn` over at least `reps` calls and about `budget` seconds.
template <class F>
double best_time(const c10::Device& d, int reps, double budget, F&& fn) {
  at::Tensor r = fn();  // warm up (allocations, kernel selection)
  sync(d, r);
  double best = 1e30, total = 0;
  for (int i = 0; i < reps || (total < budget && i < 50); ++i) {
    auto t0 = Clock::now();
    r = fn();
    sync(d, r);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

void cpu_info(MachineProbe& p) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::string> wanted = {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                  "amx_bf16", "amx_tile", "amx_int8", "asimd", "sve", "bf16"};
  std::set<std::string> found;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_first_of("\t:"));
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if ((key == "model name" || key == "Model") && p.cpu_model.empty()) p.cpu_model = value;
    if (key == "processor") ++p.logical_cpus;
    if ((key == "flags" || key == "Features") && found.empty()) {
      std::istringstream ss(value);
      std::string f;
      while (ss >> f)
        if (wanted.count(f)) found.insert(f);
    }
  }
  for (const auto& f : found) p.cpu_flags += (p.cpu_flags.empty() ? "" : " ") + f;
  if (const char* e = std::getenv("OPENBLAS_CORETYPE")) p.openblas_coretype_env = e;
  // OpenBLAS is linked by libtorch where it is the BLAS; ask it which kernels it picked.
  using CoreName = char* (*)();
  if (auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) p.openblas_core = fn();
}

}  // namespace

nlohmann::json MachineProbe::to_json() const {
  return {{"cpu_model", cpu_model},
          {"cpu_flags", cpu_flags},
          {"logical_cpus", logical_cpus},
          {"torch_threads", torch_threads},
          {"openblas_coretype_env", openblas_coretype_env.empty() ? "(unset)" : openblas_coretype_env},
          {"openblas_core", openblas_core.empty() ? "(not OpenBLAS)" : openblas_core},
          {"device", device},
          {"mem_read_gbs", mem_read_gbs},
          {"gemm_f32_gflops", gemm_f32_gflops},
          {"gemm_bf16_gflops", gemm_bf16_gflops},
          {"gemm_skinny_f32_gflops", gemm_skinny_f32_gflops},
          {"gemv_f32_gbs", gemv_f32_gbs},
          {"gemv_bf16_gbs", gemv_bf16_gbs},
          {"linear1_f32_gbs", linear1_f32_gbs},
          {"linear1_bf16_gbs", linear1_bf16_gbs},
          {"seconds", seconds}};
}

double measure_read_gbs(const c10::Device& device, int64_t bytes, int reps, double budget) {
  c10::NoGradGuard no_grad;
  const int64_t n = bytes / 4;  // far larger than any cache
  at::Tensor big = at::ones({n}, at::TensorOptions().dtype(at::kFloat).device(device));
  const double s = best_time(device, reps, budget, [&] { return big.sum(); });
  return static_cast<double>(n) * 4 / s / 1e9;
}

int64_t gemm_probe_size(c10::ScalarType dtype, bool quick) {
  if (dtype == at::kFloat) return quick ? 256 : 2048;
  return quick ? 128 : 1024;
}

double measure_gemm_gflops(const c10::Device& device, c10::ScalarType dtype, int64_t n, int reps, double budget) {
  c10::NoGradGuard no_grad;
  const auto o = at::TensorOptions().dtype(dtype).device(device);
  at::Tensor a = at::randn({n, n}, o), b = at::randn({n, n}, o);
  const double s = best_time(device, reps, budget, [&] { return at::mm(a, b); });
  return 2.0 * n * n * n / s / 1e9;
}

MachineProbe probe_machine(const c10::Device& device, bool quick) {
  const auto start = Clock::now();
  MachineProbe p;
  cpu_info(p);
  p.torch_threads = at::get_num_threads();
  p.device = device.str();
  c10::NoGradGuard no_grad;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const auto bf16 = f32.dtype(at::kBFloat16);
  const int reps = quick ? 1 : 3;
  const double budget = quick ? 0.05 : 0.4;

  p.mem_read_gbs = measure_read_gbs(device, (quick ? 32 : 512) * (int64_t{1} << 20), reps, budget);
  auto gemm = [&](const at::TensorOptions& o, int64_t m, int64_t k, int64_t n) {
    at::Tensor a = at::randn({m, k}, o), b = at::randn({k, n}, o);
    const double s = best_time(device, reps, budget, [&] { return at::mm(a, b); });
    return 2.0 * m * k * n / s / 1e9;
  };
  p.gemm_f32_gflops = measure_gemm_gflops(device, at::kFloat, gemm_probe_size(at::kFloat, quick), reps, budget);
  p.gemm_bf16_gflops =
      measure_gemm_gflops(device, at::kBFloat16, gemm_probe_size(at::kBFloat16, quick), reps, budget);
  p.gemm_skinny_f32_gflops = gemm(f32, 18, 1024, quick ? 512 : 4096);

  // Matrix-vector out of cache: cycle through enough 4096x4096 matrices to exceed the LLC.
  auto gemv = [&](const at::TensorOptions& o, bool via_linear) {
    const int64_t d = quick ? 512 : 4096, count = quick ? 2 : 6;
    std::vector<at::Tensor> w;
    for (int64_t i = 0; i < count; ++i) w.push_back(at::randn({d, d}, o));
    at::Tensor x = at::randn({d}, o), x2 = x.view({1, d});
    size_t i = 0;
    const double s = best_time(device, reps * static_cast<int>(count), budget, [&] {
      const at::Tensor& m = w[i++ % w.size()];
      return via_linear ? at::linear(x2, m) : at::mv(m, x);
    });
    return static_cast<double>(d) * d * w[0].element_size() / s / 1e9;
  };
  p.gemv_f32_gbs = gemv(f32, false);
  p.gemv_bf16_gbs = gemv(bf16, false);
  p.linear1_f32_gbs = gemv(f32, true);
  p.linear1_bf16_gbs = gemv(bf16, true);
  p.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return p;
}

}  // namespace voxcpm::bench

// CPU thread count for synthesis. libtorch's default counts physical cores, which on many
// virtual machines (2 vCPUs reported as 1 core with 2 threads) leaves half the CPU idle:
// measured here, a 2048² fp32 GEMM ran at 82 GFLOP/s on libtorch's default of 1 thread and
// 158 GFLOP/s on 2. Our default is every CPU the process may run on, shared among the
// syntheses running at the same time.
#pragma once

namespace voxcpm {

// CPUs in this process's affinity mask (at least 1).
int available_cpus();

// While alive, counts as one of the synthesis threads that share the CPUs (one per running
// utterance). Several pipelines would otherwise each start an OpenMP team as wide as the
// machine, and OpenMP's barriers stall when their threads outnumber the cores.
class CpuShare {
 public:
  CpuShare();
  ~CpuShare();
  CpuShare(const CpuShare&) = delete;
  CpuShare& operator=(const CpuShare&) = delete;
};

// Sets libtorch's intra-op threads for the calling thread (OpenMP counts are per thread):
// n > 0 exactly; n == 0 available_cpus() divided among the live CpuShare objects (at least 1).
// Cheap when nothing changes.
void use_cpu_threads(int n);

}  // namespace voxcpm

// CPU thread count for synthesis. libtorch's default counts physical cores, which on many
// virtual machines (2 vCPUs reported as 1 core with 2 threads) leaves half the CPU idle:
// measured here, a 2048² fp32 GEMM ran at 82 GFLOP/s on libtorch's default of 1 thread and
// 158 GFLOP/s on 2. Our default is every CPU the process may run on, shared among the
// syntheses running at the same time.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

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

// One thread of its own that runs the jobs handed to run(), one at a time, and exits when this
// object is destroyed. For synthesis driven from threads that outlive it (GStreamer's pooled
// streaming threads): libgomp keeps an OpenMP team for every thread that ran a parallel region
// until that thread exits, and once it manages more threads than there are CPUs it stops
// spin-waiting at its barriers. VoxCPM1.5 on two CPUs took 8.43 s for 25 steps on a thread
// alone and 9.46-9.86 s on a thread started after another had computed; a pipeline recreated in
// the same process ran 8.9 s, then 9.8 and 9.6 s. Computing here, the team goes with the thread.
class ComputeThread {
 public:
  ComputeThread();
  ~ComputeThread();
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;
  // Runs job on the thread and waits for it; rethrows what it threw. Not reentrant.
  void run(const std::function<void()>& job);

 private:
  void loop();
  std::mutex m_;
  std::condition_variable cv_;
  const std::function<void()>* job_ = nullptr;  // set by run(), cleared by the thread when done
  std::exception_ptr failure_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace voxcpm

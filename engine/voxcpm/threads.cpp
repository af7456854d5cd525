#include "voxcpm/threads.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include <ATen/Parallel.h>

namespace voxcpm {
namespace {
std::atomic<int> g_sharers{0};
}

int available_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

CpuShare::CpuShare() { g_sharers.fetch_add(1); }
CpuShare::~CpuShare() { g_sharers.fetch_sub(1); }

void use_cpu_threads(int n) {
  const int want = n > 0 ? n : std::max(1, available_cpus() / std::max(1, g_sharers.load()));
  if (at::get_num_threads() != want) at::set_num_threads(want);
}

}  // namespace voxcpm

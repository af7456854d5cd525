#include "voxcpm/threads.h"

#include <sched.h>

#include <thread>

#include <ATen/Parallel.h>

namespace voxcpm {

int available_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

void use_cpu_threads(int n) {
  const int want = n > 0 ? n : available_cpus();
  if (at::get_num_threads() != want) at::set_num_threads(want);
}

}  // namespace voxcpm

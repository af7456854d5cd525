// threads.h: the CPU count, use_cpu_threads, and ComputeThread (jobs on one thread of its own that
// exits with the object, so that its OpenMP team does not outlive the synthesis).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <dirent.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "voxcpm/threads.h"

using namespace voxcpm;

namespace {

int thread_count() {  // threads of this process, from /proc/self/task
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

}  // namespace

TEST(ComputeThread, RunsEveryJobOnOneOtherThreadInOrder) {
  ComputeThread ct;
  std::thread::id first;
  ct.run([&] { first = std::this_thread::get_id(); });
  EXPECT_NE(first, std::this_thread::get_id());
  std::string trace;
  for (int i = 0; i < 50; ++i)
    ct.run([&] {
      EXPECT_EQ(std::this_thread::get_id(), first);
      trace += static_cast<char>('a' + i % 26);
    });
  EXPECT_EQ(trace.size(), 50u);
  EXPECT_EQ(trace.substr(0, 3), "abc");  // run() returned only after each job had finished
}

TEST(ComputeThread, RethrowsAndGoesOn) {
  ComputeThread ct;
  EXPECT_THROW(ct.run([] { throw std::runtime_error("step failed"); }), std::runtime_error);
  int v = 0;
  ct.run([&] { v = 7; });  // a failed job leaves the thread usable
  EXPECT_EQ(v, 7);
}

TEST(ComputeThread, ItsOpenMPTeamGoesWithIt) {
  // A parallel region on the compute thread starts OpenMP workers; destroying the ComputeThread
  // ends the thread and, with it, libgomp's team for it.
  at::set_num_threads(2);
  const int before = thread_count();
  {
    ComputeThread ct;
    ct.run([] {
      use_cpu_threads(2);
      (void)at::ones({1 << 22}).sum().item<float>();  // a parallel region inside libtorch
    });
    EXPECT_GE(thread_count(), before + 2) << "the compute thread and its OpenMP worker";
  }
  // libgomp tells the workers to exit when their thread ends; they are gone a moment later.
  for (int i = 0; i < 500 && thread_count() > before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(thread_count(), before) << "threads left behind by a destroyed ComputeThread";
}

TEST(Threads, UseCpuThreadsIsPerThread) {
  EXPECT_GE(available_cpus(), 1);
  use_cpu_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  ComputeThread ct;
  int seen = 0;
  ct.run([&] {
    use_cpu_threads(3);
    seen = at::get_num_threads();
  });
  EXPECT_EQ(seen, 3);
}

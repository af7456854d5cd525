#include "voxcpm/threads.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

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

ComputeThread::ComputeThread() : thread_([this] { loop(); }) {}

ComputeThread::~ComputeThread() {
  {
    std::lock_guard<std::mutex> lk(m_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ComputeThread::run(const std::function<void()>& job) {
  std::unique_lock<std::mutex> lk(m_);
  job_ = &job;
  failure_ = nullptr;
  cv_.notify_all();
  cv_.wait(lk, [this] { return job_ == nullptr; });
  if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
}

void ComputeThread::loop() {
  std::unique_lock<std::mutex> lk(m_);
  while (true) {
    cv_.wait(lk, [this] { return stop_ || job_ != nullptr; });
    if (job_ == nullptr) return;  // stopping, nothing pending
    const std::function<void()>* job = job_;
    lk.unlock();
    std::exception_ptr failure;
    try {
      (*job)();
    } catch (...) {
      failure = std::current_exception();
    }
    lk.lock();
    failure_ = failure;
    job_ = nullptr;
    cv_.notify_all();
  }
}

}  // namespace voxcpm

#include "voxcpm/stage_times.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

namespace voxcpm {

// Through ATen's CUDA hooks, so that the engine needs no CUDA headers and builds against any libtorch.
void synchronize_cuda_device(int index) {
  if (index >= 0 && at::hasCUDA()) at::detail::getCUDAHooks().deviceSynchronize(index);
}

}  // namespace voxcpm

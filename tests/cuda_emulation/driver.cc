// C entry points around the emulated CUDA launchers of corner_pool_gpu.cu, for ctypes.
#include <cstdint>

#include "corner_pool_gpu.h"
#include "cuda_emulation.h"

namespace gpu = ::cornernet::corner_pool_gpu;

extern "C" {

int emu_forward(int dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
                int from_end) {
  return gpu::LaunchForward(static_cast<gpu::DType>(dtype), x, y, outer, len, inner, from_end != 0,
                            nullptr);
}

int emu_backward(int dtype, const void* y, const void* dy, void* dx, int64_t outer, int64_t len,
                 int64_t inner, int from_end) {
  return gpu::LaunchBackward(static_cast<gpu::DType>(dtype), y, dy, dx, outer, len, inner,
                             from_end != 0, nullptr);
}

void emu_set_reverse_order(int reverse) { cuda_emu::reverse_order = reverse != 0; }

void emu_launch_log(int64_t* blocks, int64_t* threads, int64_t* launches) {
  *blocks = cuda_emu::launch_log.blocks;
  *threads = cuda_emu::launch_log.threads;
  *launches = cuda_emu::launch_log.launches;
}

}  // extern "C"

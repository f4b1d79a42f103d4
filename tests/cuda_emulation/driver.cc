// C entry points that only the emulation has: run a launch's threads in reverse order, and read
// what the last launch asked for. The kernels' own entry points (ck_forward, ck_backward, ...) are
// those of benchmarks/cuda_kernels_host.cu, compiled beside this file.
#include <cstdint>

#include "cuda_emulation.h"

extern "C" {

void emu_set_reverse_order(int reverse) { cuda_emu::reverse_order = reverse != 0; }

void emu_launch_log(int64_t* blocks, int64_t* threads, int64_t* launches) {
  *blocks = cuda_emu::launch_log.blocks;
  *threads = cuda_emu::launch_log.threads;
  *launches = cuda_emu::launch_log.launches;
}

}  // extern "C"

// C entry points for benchmarks/cuda_kernels.py: device memory, copies, the corner-pool launchers
// of cornernet_tf/ops/kernels/corner_pool_gpu.cu, and event timing. Plain C types only, so that
// Python drives the kernels through ctypes on a machine that has nvcc and a GPU but no
// TensorFlow. With CORNERNET_CUDA_EMULATION defined it compiles as host C++ against
// tests/cuda_emulation (a dry run of the benchmark on a CPU).
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "corner_pool_gpu.h"

namespace gpu = ::cornernet::corner_pool_gpu;

namespace {

// Times `reps` calls of `launch` between two events on the default stream; *ms is the total.
template <typename Launch>
int TimeLaunches(int reps, float* ms, Launch launch) {
  cudaEvent_t start, stop;
  int rc = cudaEventCreate(&start);
  if (rc != cudaSuccess) return rc;
  rc = cudaEventCreate(&stop);
  if (rc == cudaSuccess) rc = cudaEventRecord(start, 0);
  for (int i = 0; rc == cudaSuccess && i < reps; ++i) rc = launch();
  if (rc == cudaSuccess) rc = cudaEventRecord(stop, 0);
  if (rc == cudaSuccess) rc = cudaEventSynchronize(stop);
  if (rc == cudaSuccess) rc = cudaEventElapsedTime(ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return rc;
}

}  // namespace

extern "C" {

int ck_device(char* name, int name_len, int* major, int* minor, int* multiprocessors) {
  cudaDeviceProp prop;
  const int rc = cudaGetDeviceProperties(&prop, 0);
  if (rc != cudaSuccess) return rc;
  std::strncpy(name, prop.name, name_len - 1);
  name[name_len - 1] = '\0';
  *major = prop.major;
  *minor = prop.minor;
  *multiprocessors = prop.multiProcessorCount;
  return cudaSuccess;
}

int ck_malloc(void** ptr, int64_t bytes) { return cudaMalloc(ptr, static_cast<size_t>(bytes)); }

int ck_free(void* ptr) { return cudaFree(ptr); }

int ck_to_device(void* dst, const void* src, int64_t bytes) {
  return cudaMemcpy(dst, src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice);
}

int ck_to_host(void* dst, const void* src, int64_t bytes) {
  return cudaMemcpy(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost);
}

int ck_synchronize() { return cudaDeviceSynchronize(); }

int ck_forward(int dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
               int from_end) {
  return gpu::LaunchForward(static_cast<gpu::DType>(dtype), x, y, outer, len, inner, from_end != 0,
                            nullptr);
}

int ck_backward(int dtype, const void* y, const void* dy, void* dx, int64_t outer, int64_t len,
                int64_t inner, int from_end) {
  return gpu::LaunchBackward(static_cast<gpu::DType>(dtype), y, dy, dx, outer, len, inner,
                             from_end != 0, nullptr);
}

int ck_time_forward(int dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
                    int from_end, int reps, float* ms) {
  return TimeLaunches(reps, ms, [&] { return ck_forward(dtype, x, y, outer, len, inner, from_end); });
}

int ck_time_backward(int dtype, const void* y, const void* dy, void* dx, int64_t outer,
                     int64_t len, int64_t inner, int from_end, int reps, float* ms) {
  return TimeLaunches(
      reps, ms, [&] { return ck_backward(dtype, y, dy, dx, outer, len, inner, from_end); });
}

// The memory-bandwidth floor of the forward: a device-to-device copy of the same bytes.
int ck_time_copy(void* dst, const void* src, int64_t bytes, int reps, float* ms) {
  return TimeLaunches(reps, ms, [&] {
    return static_cast<int>(
        cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, 0));
  });
}

const char* ck_error(int code) { return gpu::ErrorString(code); }

}  // extern "C"

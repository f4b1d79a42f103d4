// Host emulation of the CUDA features corner_pool_gpu.cu uses, so that the same source file nvcc
// compiles also builds with g++ and runs in the tests on a machine without a GPU.
//
// A kernel launch runs every (block, thread) of the grid the launcher computed, one after the
// other on the calling thread, with blockIdx/threadIdx/blockDim/gridDim set as loop variables.
// This proves indexing, bounds, grid-stride loops and tie routing. It cannot prove what depends
// on real parallel hardware: memory coalescing and speed, races between threads that run at the
// same time, or compiler differences between nvcc and g++ (e.g. fused multiply-add).
#ifndef CORNERNET_TESTS_CUDA_EMULATION_H_
#define CORNERNET_TESTS_CUDA_EMULATION_H_

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
inline dim3 blockIdx, threadIdx, blockDim, gridDim;

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
typedef struct CUstream_st* cudaStream_t;
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error"
         : e == cudaErrorMemoryAllocation ? "out of memory"
                                         : "invalid argument";
}

// The runtime calls of benchmarks/cuda_kernels_host.cu, on host memory: "device" memory is
// malloc'd, copies are memcpy, and events read a steady clock.
enum cudaMemcpyKind {
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3
};
struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::strcpy(prop->name, "host emulation");
  prop->major = prop->minor = 0;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = std::malloc(bytes ? bytes : 1);
  return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                   int) {
  return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
typedef std::chrono::steady_clock::time_point* cudaEvent_t;
inline cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new std::chrono::steady_clock::time_point();
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t event, int) {
  *event = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  *ms = std::chrono::duration<float, std::milli>(*stop - *start).count();
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

// IEEE binary16 and bfloat16 as raw bits, converted with round-to-nearest-even like the CUDA
// intrinsics.
struct __half {
  uint16_t bits;
};
struct __nv_bfloat16 {
  uint16_t bits;
};

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float __half2float(__half h) {
  const uint32_t sign = (h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1f;
  const uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return BitsFloat(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp != 0) return BitsFloat(sign | ((exp + 112) << 23) | (man << 13));
  const float sub = static_cast<float>(man) * (1.0f / 16777216.0f);  // man * 2^-24
  return sign ? -sub : sub;
}

inline __half __float2half(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) return {static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0))};
  if (abs >= 0x477ff000u) return {static_cast<uint16_t>(sign | 0x7c00u)};  // rounds to inf
  if (abs < 0x38800000u) {  // subnormal or zero in half: value / 2^-24, rounded to even
    const float scaled = BitsFloat(abs) * 16777216.0f;
    float r = static_cast<float>(static_cast<int64_t>(scaled));
    const float frac = scaled - r;
    if (frac > 0.5f || (frac == 0.5f && static_cast<int64_t>(r) % 2 == 1)) r += 1.0f;
    return {static_cast<uint16_t>(sign | static_cast<uint16_t>(r))};
  }
  uint32_t v = abs - 0x38000000u;  // rebias exponent (127 -> 15)
  v += 0xfffu + ((v >> 13) & 1u);   // round to nearest even on the 13 dropped bits
  return {static_cast<uint16_t>(sign | (v >> 13))};
}

inline float __bfloat162float(__nv_bfloat16 b) { return BitsFloat(static_cast<uint32_t>(b.bits) << 16); }

inline __nv_bfloat16 __float2bfloat16(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((u >> 16) | 0x40u)};  // NaN
  return {static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

namespace cuda_emu {

// What the last launch asked for, and how many launches there were (read by the tests).
struct LaunchLog {
  int64_t blocks = 0;
  int64_t threads = 0;
  int64_t launches = 0;
};
inline LaunchLog launch_log;
// Run the blocks and threads in reverse order: results must not depend on thread order.
inline bool reverse_order = false;

template <typename Kernel>
struct Launch {
  Kernel kernel;
  unsigned blocks;
  unsigned threads;

  template <typename... Args>
  void operator()(Args... args) const {
    launch_log.blocks = blocks;
    launch_log.threads = threads;
    ++launch_log.launches;
    gridDim = dim3{blocks, 1, 1};
    blockDim = dim3{threads, 1, 1};
    for (unsigned i = 0; i < blocks; ++i) {
      blockIdx.x = reverse_order ? blocks - 1 - i : i;
      for (unsigned k = 0; k < threads; ++k) {
        threadIdx.x = reverse_order ? threads - 1 - k : k;
        kernel(args...);
      }
    }
  }
};

template <typename Kernel>
Launch<Kernel> MakeLaunch(Kernel kernel, unsigned blocks, unsigned threads, cudaStream_t) {
  return Launch<Kernel>{kernel, blocks, threads};
}

}  // namespace cuda_emu

#define CORNERNET_LAUNCH(kernel, blocks, threads, stream) \
  ::cuda_emu::MakeLaunch(kernel, blocks, threads, stream)

#endif  // CORNERNET_TESTS_CUDA_EMULATION_H_

// CUDA kernels for corner pooling (see corner_pool_gpu.h for the layout and the contract).
//
// One thread per lane (outer index, inner index): consecutive threads read consecutive addresses
// of each row, so every step of the scan is a coalesced row access. The scan itself is sequential
// along `len`, which is short (a feature map's height or width). No shared memory, atomics or
// warp shuffles: each thread reads and writes only its own lane.
//
// The tests also compile this file as host C++ (tests/cuda_emulation), where the CUDA headers are
// replaced by an emulation that runs a kernel launch as loops over the grid: kernels are launched
// through CORNERNET_LAUNCH, and CORNERNET_GPU_MAX_BLOCKS may be lowered to exercise the
// grid-stride loops on small tensors.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "corner_pool_gpu.h"

namespace cornernet {
namespace corner_pool_gpu {
namespace {

#ifndef CORNERNET_GPU_MAX_BLOCKS
#define CORNERNET_GPU_MAX_BLOCKS 65535
#endif
#ifndef CORNERNET_LAUNCH
#define CORNERNET_LAUNCH(kernel, blocks, threads, stream) kernel<<<blocks, threads, 0, stream>>>
#endif

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = CORNERNET_GPU_MAX_BLOCKS;

// Arithmetic type: 16-bit types compare and accumulate in float.
template <typename T> struct Acc { typedef T type; };
template <> struct Acc<__half> { typedef float type; };
template <> struct Acc<__nv_bfloat16> { typedef float type; };

__device__ __forceinline__ float ToAcc(float v) { return v; }
__device__ __forceinline__ double ToAcc(double v) { return v; }
__device__ __forceinline__ float ToAcc(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToAcc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T FromAcc(typename Acc<T>::type v);
template <> __device__ __forceinline__ float FromAcc<float>(float v) { return v; }
template <> __device__ __forceinline__ double FromAcc<double>(double v) { return v; }
template <> __device__ __forceinline__ __half FromAcc<__half>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ __nv_bfloat16 FromAcc<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

template <typename T>
__global__ void ForwardKernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer,
                              int64_t len, int64_t inner, bool from_end) {
  const int64_t lanes = outer * inner;
  const int64_t step = from_end ? -inner : inner;
  for (int64_t lane = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; lane < lanes;
       lane += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = lane / inner;
    const int64_t j = lane - o * inner;
    int64_t p = o * len * inner + j + (from_end ? (len - 1) * inner : 0);
    T best = x[p];
    typename Acc<T>::type best_a = ToAcc(best);
    y[p] = best;
    for (int64_t s = 1; s < len; ++s) {
      p += step;
      const T v = x[p];
      const typename Acc<T>::type va = ToAcc(v);
      if (va > best_a) {  // strict: the first maximum in scan order is kept
        best = v;
        best_a = va;
      }
      y[p] = best;
    }
  }
}

// Walks the scan backwards. A run of equal outputs ends (in scan order) at the position where the
// running maximum was set, which is the position that receives the run's upstream gradient.
template <typename T>
__global__ void BackwardKernel(const T* __restrict__ y, const T* dy, T* dx, int64_t outer,
                               int64_t len, int64_t inner, bool from_end) {
  typedef typename Acc<T>::type A;
  const int64_t lanes = outer * inner;
  const int64_t step = from_end ? -inner : inner;  // one position forwards in scan order
  for (int64_t lane = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; lane < lanes;
       lane += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = lane / inner;
    const int64_t j = lane - o * inner;
    const int64_t first = o * len * inner + j + (from_end ? (len - 1) * inner : 0);
    int64_t p = first + (len - 1) * step;  // last position in scan order
    A cur = ToAcc(y[p]);
    A after = cur;
    A acc = A(0);
    for (int64_t s = len - 1; s >= 0; --s) {
      const A before = s > 0 ? ToAcc(y[p - step]) : cur;
      const A d = ToAcc(dy[p]);
      acc = (s == len - 1 || cur != after) ? d : acc + d;
      const bool sets_max = (s == 0) || cur != before;
      dx[p] = FromAcc<T>(sets_max ? acc : A(0));
      after = cur;
      cur = before;
      p -= step;
    }
  }
}

int64_t Blocks(int64_t lanes) {
  const int64_t blocks = (lanes + kThreads - 1) / kThreads;
  return blocks < kMaxBlocks ? blocks : kMaxBlocks;
}

template <typename T>
int Forward(const void* x, void* y, int64_t outer, int64_t len, int64_t inner, bool from_end,
            cudaStream_t stream) {
  const int64_t lanes = outer * inner;
  if (lanes == 0 || len == 0) return cudaSuccess;
  CORNERNET_LAUNCH(ForwardKernel<T>, static_cast<unsigned>(Blocks(lanes)), kThreads, stream)(
      static_cast<const T*>(x), static_cast<T*>(y), outer, len, inner, from_end);
  return cudaGetLastError();
}

template <typename T>
int Backward(const void* y, const void* dy, void* dx, int64_t outer, int64_t len, int64_t inner,
             bool from_end, cudaStream_t stream) {
  const int64_t lanes = outer * inner;
  if (lanes == 0 || len == 0) return cudaSuccess;
  CORNERNET_LAUNCH(BackwardKernel<T>, static_cast<unsigned>(Blocks(lanes)), kThreads, stream)(
      static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), outer, len, inner,
      from_end);
  return cudaGetLastError();
}

}  // namespace

int LaunchForward(DType dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
                  bool from_end, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::kFloat32: return Forward<float>(x, y, outer, len, inner, from_end, s);
    case DType::kFloat64: return Forward<double>(x, y, outer, len, inner, from_end, s);
    case DType::kFloat16: return Forward<__half>(x, y, outer, len, inner, from_end, s);
    case DType::kBFloat16: return Forward<__nv_bfloat16>(x, y, outer, len, inner, from_end, s);
  }
  return cudaErrorInvalidValue;
}

int LaunchBackward(DType dtype, const void* y, const void* dy, void* dx, int64_t outer,
                   int64_t len, int64_t inner, bool from_end, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::kFloat32: return Backward<float>(y, dy, dx, outer, len, inner, from_end, s);
    case DType::kFloat64: return Backward<double>(y, dy, dx, outer, len, inner, from_end, s);
    case DType::kFloat16: return Backward<__half>(y, dy, dx, outer, len, inner, from_end, s);
    case DType::kBFloat16:
      return Backward<__nv_bfloat16>(y, dy, dx, outer, len, inner, from_end, s);
  }
  return cudaErrorInvalidValue;
}

const char* ErrorString(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace corner_pool_gpu
}  // namespace cornernet

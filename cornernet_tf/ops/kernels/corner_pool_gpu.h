// CUDA launchers for corner pooling. Plain pointers and sizes only, so that the CUDA translation
// unit (corner_pool_gpu.cu) compiles with nvcc without TensorFlow headers, and the TensorFlow op
// (corner_pool_ops.cc) includes this header without CUDA headers.
//
// Layout: a tensor is viewed as [outer, len, inner] (row-major); the running maximum runs along
// `len`. NHWC pooling over H is outer=N, len=H, inner=W*C; over W it is outer=N*H, len=W, inner=C.
// `from_end` is true when the scan starts at index len-1 (top, left) and false when it starts at
// index 0 (bottom, right).
#ifndef CORNERNET_TF_OPS_KERNELS_CORNER_POOL_GPU_H_
#define CORNERNET_TF_OPS_KERNELS_CORNER_POOL_GPU_H_

#include <cstdint>

namespace cornernet {
namespace corner_pool_gpu {

// Element type of the buffers. kFloat16 is IEEE binary16 and kBFloat16 is bfloat16, both as raw
// 16-bit storage (bit-compatible with Eigen::half / Eigen::bfloat16 and __half / __nv_bfloat16).
enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// y = running maximum of x. `stream` is a cudaStream_t. Returns 0 (cudaSuccess) or a CUDA error code.
int LaunchForward(DType dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
                  bool from_end, void* stream);

// dx = gradient of the running maximum for upstream dy, computed from the forward output y.
// Each output's gradient goes to the first maximum met in scan order (strict `>` while scanning),
// as the official CornerNet backward does. dx may alias dy.
int LaunchBackward(DType dtype, const void* y, const void* dy, void* dx, int64_t outer,
                   int64_t len, int64_t inner, bool from_end, void* stream);

// Human-readable message for an error code returned above.
const char* ErrorString(int code);

}  // namespace corner_pool_gpu
}  // namespace cornernet

#endif  // CORNERNET_TF_OPS_KERNELS_CORNER_POOL_GPU_H_

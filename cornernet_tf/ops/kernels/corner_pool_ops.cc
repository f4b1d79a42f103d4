// Corner pooling for CornerNet as TensorFlow custom ops (NHWC).
//
//   CornerPool(x, direction) -> y          running maximum along H (top, bottom) or W (left, right)
//   CornerPoolGrad(y, dy, direction) -> dx its gradient, computed from the forward output y
//
// top:    y[i, j] = max_{i <= k < H} x[k, j]      left:  y[i, j] = max_{j <= k < W} x[i, k]
// bottom: y[i, j] = max_{0 <= k <= i} x[k, j]     right: y[i, j] = max_{0 <= k <= j} x[i, k]
//
// Gradient routing follows the official CornerNet C++ backward: it scans from the pool's start
// side (row H-1 for top, column W-1 for left, index 0 for bottom/right) and moves the running
// argmax only on a strict `>`, so each output's gradient goes to the first maximum met in scan
// order. Seen from y alone: along the scan, y is a staircase; each run of equal values starts where
// the maximum was set, and that position receives the sum of the run's upstream gradients. A run
// start is recognised by y[s] != y[s - 1] (scan order), so the backward needs y and dy only and
// reads each of them once.
//
// CPU layout: the tensor is viewed as [outer, len, inner] with the pooled axis in the middle
// (H pooling: outer=N, len=H, inner=W*C; W pooling: outer=N*H, len=W, inner=C). One scan step is an
// elementwise operation on a contiguous row of `inner` values, vectorised along the channels;
// (outer, inner range) blocks run in parallel on TensorFlow's intra-op thread pool.
// Two CPU paths:
//  * streaming (float32 tensors of at least kStreamingMinBytes with SIMD-aligned rows, on x86 with
//    AVX2 or AVX-512): the running values stay in vector registers for a strip of channels while
//    the scan walks the pooled axis, and results are written with non-temporal stores, so memory
//    traffic is one read per input and one write per output (no read-for-ownership of outputs
//    that would be evicted before use anyway);
//  * general (any dtype and size): each step reads the previous output row back from L1.
#define EIGEN_USE_THREADS
#if GOOGLE_CUDA
#define EIGEN_USE_GPU
#endif

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/util/work_sharder.h"

#if GOOGLE_CUDA
#include "corner_pool_gpu.h"
#endif

namespace cornernet {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
namespace shape_inference = ::tensorflow::shape_inference;

REGISTER_OP("CornerPool")
    .Input("x: T")
    .Output("y: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("direction: {'top', 'left', 'bottom', 'right'}")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
      c->set_output(0, x);
      return absl::OkStatus();
    })
    .Doc(R"doc(
Corner pooling (CornerNet) of an NHWC tensor: the running maximum along H or W.
top looks down (max over rows i..H-1), left looks right (columns j..W-1), bottom looks up
(rows 0..i), right looks left (columns 0..j).
)doc");

REGISTER_OP("CornerPoolGrad")
    .Input("y: T")
    .Input("dy: T")
    .Output("dx: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("direction: {'top', 'left', 'bottom', 'right'}")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle y, dy, merged;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &y));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &dy));
      TF_RETURN_IF_ERROR(c->Merge(y, dy, &merged));
      c->set_output(0, merged);
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradient of CornerPool from its output y and the upstream gradient dy. Each output's gradient
goes to the first maximum met in scan order, as in the official CornerNet backward.
)doc");

namespace {

// [outer, len, inner] view of an NHWC tensor pooled along H (axis 1) or W (axis 2).
struct Geometry {
  int64_t outer = 0;
  int64_t len = 0;
  int64_t inner = 0;
  bool from_end = false;  // the scan starts at index len - 1 (top, left)
  bool along_w = false;   // W pooling (rows of C values), else H pooling (rows of W*C values)

  // Offset of scan position 0 of (o, j) and the offset change per scan step.
  int64_t First(int64_t o, int64_t j) const {
    return o * len * inner + j + (from_end ? (len - 1) * inner : 0);
  }
  int64_t Step() const { return from_end ? -inner : inner; }
};

struct Direction {
  int axis = 1;
  bool from_end = true;
};

absl::Status ParseDirection(const std::string& name, Direction* d) {
  if (name == "top") {
    *d = {1, true};
  } else if (name == "left") {
    *d = {2, true};
  } else if (name == "bottom") {
    *d = {1, false};
  } else if (name == "right") {
    *d = {2, false};
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "CornerPool: unknown direction '", name, "'; expected top, left, bottom or right"));
  }
  return absl::OkStatus();
}

Geometry MakeGeometry(const TensorShape& s, const Direction& d) {
  const int64_t n = s.dim_size(0), h = s.dim_size(1), w = s.dim_size(2), c = s.dim_size(3);
  Geometry g;
  if (d.axis == 1) {
    g.outer = n;
    g.len = h;
    g.inner = w * c;
  } else {
    g.outer = n * h;
    g.len = w;
    g.inner = c;
  }
  g.from_end = d.from_end;
  g.along_w = d.axis == 2;
  return g;
}

absl::Status CheckRank4(const char* op, const Tensor& t) {
  if (t.dims() == 4) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(op, " expects a 4-D NHWC tensor, got shape ", t.shape().DebugString()));
}

// ---------------------------------------------------------------------------------------------
// CPU, general path

// 16-bit types compare and accumulate in float; float and double in themselves.
template <typename T> struct AccType { typedef T type; };
template <> struct AccType<Eigen::half> { typedef float type; };
template <> struct AccType<Eigen::bfloat16> { typedef float type; };

// Inner elements per work block of the general path: the rows of a block in use (previous
// output, input, output, accumulator) stay in L1 while the scan walks the pooled axis.
constexpr int64_t kBlockElements = 2048;
// Inner elements per work block of the streaming path (whole register strips).
constexpr int64_t kStreamingBlockElements = 1024;
// Rough cost of one element of one scan step (loads, compare, store) for the sharder.
constexpr int64_t kCyclesPerElement = 2;
// Outputs at least this large are written with non-temporal stores: they would not stay in
// cache for the next op anyway.
#ifndef CORNERNET_STREAMING_MIN_BYTES
#define CORNERNET_STREAMING_MIN_BYTES (int64_t{8} << 20)
#endif
constexpr int64_t kStreamingMinBytes = CORNERNET_STREAMING_MIN_BYTES;

// out[j] = max(x[j], prev[j]) keeping the earlier (prev) value on ties; out may alias x.
template <typename T>
inline void MaxRow(const T* x, const T* prev, T* out, int64_t n) {
  typedef typename AccType<T>::type A;
  for (int64_t j = 0; j < n; ++j) {
    const T a = x[j];
    const T b = prev[j];
    out[j] = static_cast<A>(a) > static_cast<A>(b) ? a : b;
  }
}

template <typename T>
void ForwardBlock(const T* x, T* y, const Geometry& g, int64_t o, int64_t j0, int64_t j1) {
  const int64_t n = j1 - j0;
  const int64_t step = g.Step();
  int64_t p = g.First(o, j0);
  if (x != y) std::copy(x + p, x + p + n, y + p);
  for (int64_t s = 1; s < g.len; ++s) {
    const T* prev = y + p;
    p += step;
    MaxRow(x + p, prev, y + p, n);
  }
}

// One scan position of the backward pass, walking the scan backwards (see the file comment).
//   acc:    upstream gradient summed over the current run of equal outputs (updated here);
//   cur:    y at this position; after: y one position later in scan order (absent at the scan's
//           last position); before: y one position earlier (absent at the scan's first position).
template <typename T, bool kHasAfter, bool kHasBefore>
inline void BackwardRow(const T* cur, const T* after, const T* before, const T* dy, T* dx,
                        typename AccType<T>::type* acc, int64_t n) {
  typedef typename AccType<T>::type A;
  for (int64_t j = 0; j < n; ++j) {
    const A d = static_cast<A>(dy[j]);
    const A c = static_cast<A>(cur[j]);
    A a = d;
    if (kHasAfter) a = c != static_cast<A>(after[j]) ? d : acc[j] + d;
    acc[j] = a;
    if (kHasBefore) {
      dx[j] = static_cast<T>(c != static_cast<A>(before[j]) ? a : A(0));
    } else {
      dx[j] = static_cast<T>(a);
    }
  }
}

template <typename T>
void BackwardBlock(const T* y, const T* dy, T* dx, const Geometry& g, int64_t o, int64_t j0,
                   int64_t j1) {
  typedef typename AccType<T>::type A;
  A acc[kBlockElements];
  const int64_t n = j1 - j0;
  const int64_t step = g.Step();
  const int64_t first = g.First(o, j0);
  const auto row = [first, step](int64_t s) { return first + s * step; };
  if (g.len == 1) {
    const int64_t p = row(0);
    BackwardRow<T, false, false>(y + p, nullptr, nullptr, dy + p, dx + p, acc, n);
    return;
  }
  int64_t p = row(g.len - 1);
  BackwardRow<T, false, true>(y + p, nullptr, y + p - step, dy + p, dx + p, acc, n);
  for (int64_t s = g.len - 2; s >= 1; --s) {
    p = row(s);
    BackwardRow<T, true, true>(y + p, y + p + step, y + p - step, dy + p, dx + p, acc, n);
  }
  p = row(0);
  BackwardRow<T, true, false>(y + p, y + p + step, nullptr, dy + p, dx + p, acc, n);
}

// ---------------------------------------------------------------------------------------------
// CPU, streaming path (float32, x86 SIMD)

#if defined(__AVX512F__) || defined(__AVX2__)
#define CORNERNET_STREAMING 1

#if defined(__AVX512F__)
struct Simd {
  typedef __m512 V;
  typedef __mmask16 M;
  static constexpr int kLanes = 16;
  static constexpr int kForwardVectors = 8;   // registers per strip: 128 floats
  static constexpr int kBackwardVectors = 8;  // three live vectors each (acc, current, after)
  static V Load(const float* p) { return _mm512_load_ps(p); }
  static void Store(float* p, V v) { _mm512_store_ps(p, v); }
  static void Stream(float* p, V v) { _mm512_stream_ps(p, v); }
  static V Max(V a, V b) { return _mm512_max_ps(a, b); }  // a > b ? a : b
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static M NotEqual(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
  static V Select(M m, V if_true, V if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
  static V ZeroUnless(M m, V v) { return _mm512_maskz_mov_ps(m, v); }
};
#else
struct Simd {
  typedef __m256 V;
  typedef __m256 M;
  static constexpr int kLanes = 8;
  static constexpr int kForwardVectors = 8;   // 64 floats
  static constexpr int kBackwardVectors = 4;  // 16 ymm registers: 3 live per vector plus temps
  static V Load(const float* p) { return _mm256_load_ps(p); }
  static void Store(float* p, V v) { _mm256_store_ps(p, v); }
  static void Stream(float* p, V v) { _mm256_stream_ps(p, v); }
  static V Max(V a, V b) { return _mm256_max_ps(a, b); }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static M NotEqual(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }
  static V Select(M m, V if_true, V if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
  static V ZeroUnless(M m, V v) { return _mm256_and_ps(m, v); }
};
#endif

constexpr int kL = Simd::kLanes;

inline void PrefetchLines(const float* p, int vectors) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int b = 0; b < vectors * kL * 4; b += 64) _mm_prefetch(c + b, _MM_HINT_T0);
}

// Where to prefetch while one strip scans. Hardware prefetchers follow ascending rows well and
// descending or large-stride patterns poorly, so:
//  * W pooling with a descending walk: the same strip of the next outer row, ascending, one
//    position per step (that row is walked next);
//  * H pooling: the strip a few rows ahead along the walk.
struct PrefetchPlan {
  int64_t next_row = -1;   // W pooling: offset of the next outer row's strip, else -1
  int64_t rows_ahead = 0;  // H pooling: prefetch distance in scan steps, else 0
};

constexpr int64_t kRowsAhead = 2;

template <int K>
void ForwardStrip(const float* x, float* y, int64_t first, int64_t step, int64_t len,
                  int64_t inner, const PrefetchPlan& plan) {
  Simd::V m[K];
  int64_t p = first;
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) m[k] = Simd::Load(x + p + k * kL);
  for (int64_t s = 0; s < len; ++s, p += step) {
    if (plan.next_row >= 0) PrefetchLines(x + plan.next_row + s * inner, K);
    if (plan.rows_ahead != 0 && s + plan.rows_ahead < len) {
      PrefetchLines(x + p + plan.rows_ahead * step, K);
    }
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k) {
      m[k] = Simd::Max(Simd::Load(x + p + k * kL), m[k]);  // ties keep the earlier value
      Simd::Stream(y + p + k * kL, m[k]);
    }
  }
}

// Walks the scan backwards from its last position, like BackwardRow, with the values in registers.
template <int K>
void BackwardStrip(const float* y, const float* dy, float* dx, int64_t first, int64_t step,
                   int64_t len, int64_t inner, const PrefetchPlan& plan) {
  Simd::V acc[K], cur[K], after[K];
  int64_t p = first + (len - 1) * step;
#pragma GCC unroll 16
  for (int k = 0; k < K; ++k) {
    cur[k] = Simd::Load(y + p + k * kL);
    after[k] = cur[k];
    acc[k] = Simd::Load(dy + p + k * kL);  // the last position starts a run of its own
  }
  for (int64_t s = len - 1; s >= 0; --s, p -= step) {
    if (plan.next_row >= 0) {
      PrefetchLines(y + plan.next_row + (len - 1 - s) * inner, K);
      PrefetchLines(dy + plan.next_row + (len - 1 - s) * inner, K);
    }
    if (plan.rows_ahead != 0 && s - plan.rows_ahead - 1 >= 0) {
      PrefetchLines(y + p - (plan.rows_ahead + 1) * step, K);
      PrefetchLines(dy + p - plan.rows_ahead * step, K);
    }
#pragma GCC unroll 16
    for (int k = 0; k < K; ++k) {
      const Simd::V before = s > 0 ? Simd::Load(y + p - step + k * kL) : cur[k];
      if (s != len - 1) {
        const Simd::V d = Simd::Load(dy + p + k * kL);
        acc[k] = Simd::Select(Simd::NotEqual(cur[k], after[k]), d, Simd::Add(acc[k], d));
      }
      const Simd::V out = s > 0 ? Simd::ZeroUnless(Simd::NotEqual(cur[k], before), acc[k]) : acc[k];
      Simd::Stream(dx + p + k * kL, out);
      after[k] = cur[k];
      cur[k] = before;
    }
  }
}

// Strips of up to kMax vectors covering [j0, j1) (a multiple of kL) of one outer index.
template <int kMax, typename StripFn>
inline void ForEachStrip(int64_t j0, int64_t j1, StripFn fn) {
  int64_t j = j0;
  for (; j + kMax * kL <= j1; j += kMax * kL) fn(j, std::integral_constant<int, kMax>());
  if (kMax > 4 && j + 4 * kL <= j1) {
    fn(j, std::integral_constant<int, 4>());
    j += 4 * kL;
  }
  if (kMax > 2 && j + 2 * kL <= j1) {
    fn(j, std::integral_constant<int, 2>());
    j += 2 * kL;
  }
  for (; j + kL <= j1; j += kL) fn(j, std::integral_constant<int, 1>());
}

PrefetchPlan MakePlan(const Geometry& g, int64_t o, int64_t j, bool walks_descending) {
  PrefetchPlan plan;
  if (!g.along_w) {
    plan.rows_ahead = kRowsAhead;
  } else if (walks_descending && o + 1 < g.outer) {
    plan.next_row = (o + 1) * g.len * g.inner + j;
  }
  return plan;
}

// W pooling with more channels than one register strip holds: walks the positions of one outer
// row, each a contiguous run of channels [j0, j1), with the running state in an L1 buffer.
// Memory is read and written in contiguous runs of (j1 - j0) floats.
void ForwardRowStreaming(const float* x, float* y, const Geometry& g, int64_t o, int64_t j0,
                         int64_t j1) {
  alignas(64) float m[kStreamingBlockElements];
  const int64_t n = j1 - j0;
  const int64_t step = g.Step();
  // The walk goes towards lower addresses for left: read the next row ahead, ascending.
  const int64_t next = g.from_end && o + 1 < g.outer ? (o + 1) * g.len * g.inner + j0 : -1;
  int64_t p = g.First(o, j0);
  for (int64_t s = 0; s < g.len; ++s, p += step) {
    if (next >= 0) PrefetchLines(x + next + s * g.inner, static_cast<int>(n / kL));
    for (int64_t j = 0; j < n; j += kL) {
      Simd::V v = Simd::Load(x + p + j);
      if (s > 0) v = Simd::Max(v, Simd::Load(m + j));  // ties keep the earlier value
      Simd::Store(m + j, v);
      Simd::Stream(y + p + j, v);
    }
  }
}

// W pooling backward, walking the scan backwards; the y rows one step either side were read
// moments ago and come from L1.
void BackwardRowStreaming(const float* y, const float* dy, float* dx, const Geometry& g,
                          int64_t o, int64_t j0, int64_t j1) {
  alignas(64) float acc[kStreamingBlockElements];
  const int64_t n = j1 - j0;
  const int64_t step = g.Step();
  const int64_t last = g.len - 1;
  // The walk goes towards lower addresses for right: read the next row ahead, ascending.
  const int64_t next = !g.from_end && o + 1 < g.outer ? (o + 1) * g.len * g.inner + j0 : -1;
  int64_t p = g.First(o, j0) + last * step;
  for (int64_t s = last; s >= 0; --s, p -= step) {
    if (next >= 0) {
      PrefetchLines(y + next + (last - s) * g.inner, static_cast<int>(n / kL));
      PrefetchLines(dy + next + (last - s) * g.inner, static_cast<int>(n / kL));
    }
    for (int64_t j = 0; j < n; j += kL) {
      const Simd::V cur = Simd::Load(y + p + j);
      const Simd::V d = Simd::Load(dy + p + j);
      Simd::V a = d;
      if (s < last) {
        a = Simd::Select(Simd::NotEqual(cur, Simd::Load(y + p + step + j)), d,
                         Simd::Add(Simd::Load(acc + j), d));
      }
      Simd::Store(acc + j, a);
      if (s > 0) a = Simd::ZeroUnless(Simd::NotEqual(cur, Simd::Load(y + p - step + j)), a);
      Simd::Stream(dx + p + j, a);
    }
  }
}

void ForwardBlockStreaming(const float* x, float* y, const Geometry& g, int64_t o, int64_t j0,
                           int64_t j1) {
  // Several strips per outer row would each walk the row sparsely: walk it once instead.
  if (g.along_w && j1 - j0 > Simd::kForwardVectors * kL) {
    return ForwardRowStreaming(x, y, g, o, j0, j1);
  }
  ForEachStrip<Simd::kForwardVectors>(j0, j1, [&](int64_t j, auto k) {
    ForwardStrip<decltype(k)::value>(x, y, g.First(o, j), g.Step(), g.len, g.inner,
                                     MakePlan(g, o, j, g.from_end));
  });
}

void BackwardBlockStreaming(const float* y, const float* dy, float* dx, const Geometry& g,
                            int64_t o, int64_t j0, int64_t j1) {
  if (g.along_w && j1 - j0 > Simd::kBackwardVectors * kL) {
    return BackwardRowStreaming(y, dy, dx, g, o, j0, j1);
  }
  ForEachStrip<Simd::kBackwardVectors>(j0, j1, [&](int64_t j, auto k) {
    BackwardStrip<decltype(k)::value>(y, dy, dx, g.First(o, j), g.Step(), g.len, g.inner,
                                      MakePlan(g, o, j, !g.from_end));
  });
}

inline bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

#endif  // AVX2 or AVX-512

// Whether a float tensor takes the streaming path (see the file comment).
bool UseStreaming(const Geometry& g, std::initializer_list<const void*> buffers) {
#ifdef CORNERNET_STREAMING
  if (g.outer * g.len * g.inner * int64_t{4} < kStreamingMinBytes) return false;
  if (g.inner % kL != 0) return false;
  for (const void* b : buffers) {
    if (!Aligned(b)) return false;
  }
  return true;
#else
  (void)g;
  (void)buffers;
  return false;
#endif
}

// Runs fn(o, j0, j1) over all (outer index, inner block) pairs on the intra-op thread pool.
// Blocks are equal-sized multiples of 16 elements (64 bytes of float) so rows stay aligned.
template <typename Fn>
void ForEachBlock(OpKernelContext* ctx, const Geometry& g, int64_t max_block, bool streaming,
                  Fn fn) {
  const int64_t num_blocks = (g.inner + max_block - 1) / max_block;
  int64_t block = (g.inner + num_blocks - 1) / num_blocks;
  block = std::min(g.inner, (block + 15) / 16 * 16);
  const int64_t per_outer = (g.inner + block - 1) / block;
  const int64_t total = g.outer * per_outer;
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t cost = std::max<int64_t>(1, g.len * block * kCyclesPerElement);
  ::tensorflow::Shard(workers->NumThreads(), workers, total, cost,
                      [&g, &fn, block, per_outer, streaming](int64_t begin, int64_t end) {
                        for (int64_t u = begin; u < end; ++u) {
                          const int64_t o = u / per_outer;
                          const int64_t j0 = (u - o * per_outer) * block;
                          fn(o, j0, std::min(g.inner, j0 + block));
                        }
#ifdef CORNERNET_STREAMING
                        // Non-temporal stores are weakly ordered: publish them before the
                        // shard reports completion.
                        if (streaming) _mm_sfence();
#else
                        (void)streaming;
#endif
                      });
}

class CornerPoolOpBase : public OpKernel {
 public:
  explicit CornerPoolOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string name;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("direction", &name));
    OP_REQUIRES_OK(ctx, ParseDirection(name, &direction_));
  }

 protected:
  Direction direction_;
};

template <typename T>
void RunForward(OpKernelContext* ctx, const Geometry& g, const T* x, T* y) {
  ForEachBlock(ctx, g, kBlockElements, false,
               [x, y, &g](int64_t o, int64_t j0, int64_t j1) { ForwardBlock(x, y, g, o, j0, j1); });
}

template <>
void RunForward<float>(OpKernelContext* ctx, const Geometry& g, const float* x, float* y) {
#ifdef CORNERNET_STREAMING
  if (UseStreaming(g, {x, y})) {
    ForEachBlock(ctx, g, kStreamingBlockElements, true,
                 [x, y, &g](int64_t o, int64_t j0, int64_t j1) {
                   ForwardBlockStreaming(x, y, g, o, j0, j1);
                 });
    return;
  }
#endif
  ForEachBlock(ctx, g, kBlockElements, false,
               [x, y, &g](int64_t o, int64_t j0, int64_t j1) { ForwardBlock(x, y, g, o, j0, j1); });
}

template <typename T>
void RunBackward(OpKernelContext* ctx, const Geometry& g, const T* y, const T* dy, T* dx) {
  ForEachBlock(ctx, g, kBlockElements, false, [y, dy, dx, &g](int64_t o, int64_t j0, int64_t j1) {
    BackwardBlock(y, dy, dx, g, o, j0, j1);
  });
}

template <>
void RunBackward<float>(OpKernelContext* ctx, const Geometry& g, const float* y,
                        const float* dy, float* dx) {
#ifdef CORNERNET_STREAMING
  if (UseStreaming(g, {y, dy, dx})) {
    ForEachBlock(ctx, g, kStreamingBlockElements, true,
                 [y, dy, dx, &g](int64_t o, int64_t j0, int64_t j1) {
                   BackwardBlockStreaming(y, dy, dx, g, o, j0, j1);
                 });
    return;
  }
#endif
  ForEachBlock(ctx, g, kBlockElements, false, [y, dy, dx, &g](int64_t o, int64_t j0, int64_t j1) {
    BackwardBlock(y, dy, dx, g, o, j0, j1);
  });
}

template <typename T>
class CornerPoolCpuOp : public CornerPoolOpBase {
 public:
  using CornerPoolOpBase::CornerPoolOpBase;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES_OK(ctx, CheckRank4("CornerPool", x));
    Tensor* y = nullptr;
    // In place when x is not used elsewhere: every element is read before it is written.
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, x.shape(), &y));
    if (x.NumElements() == 0) return;
    RunForward<T>(ctx, MakeGeometry(x.shape(), direction_), x.flat<T>().data(),
                  y->flat<T>().data());
  }
};

template <typename T>
class CornerPoolGradCpuOp : public CornerPoolOpBase {
 public:
  using CornerPoolOpBase::CornerPoolOpBase;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& y = ctx->input(0);
    const Tensor& dy = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckRank4("CornerPoolGrad", y));
    OP_REQUIRES(ctx, y.shape() == dy.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "CornerPoolGrad: y and dy shapes differ: ", y.shape().DebugString(), " vs ",
                    dy.shape().DebugString())));
    Tensor* dx = nullptr;
    // dx may overwrite dy: each dy element is read before its dx element is written.
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({1}, 0, dy.shape(), &dx));
    if (y.NumElements() == 0) return;
    RunBackward<T>(ctx, MakeGeometry(y.shape(), direction_), y.flat<T>().data(),
                   dy.flat<T>().data(), dx->flat<T>().data());
  }
};

#define REGISTER_CPU(T)                                                                     \
  REGISTER_KERNEL_BUILDER(                                                                  \
      Name("CornerPool").Device(DEVICE_CPU).TypeConstraint<T>("T"), CornerPoolCpuOp<T>);   \
  REGISTER_KERNEL_BUILDER(Name("CornerPoolGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          CornerPoolGradCpuOp<T>);
REGISTER_CPU(Eigen::half)
REGISTER_CPU(Eigen::bfloat16)
REGISTER_CPU(float)
REGISTER_CPU(double)
#undef REGISTER_CPU

// ---------------------------------------------------------------------------------------------
// GPU: the kernels live in corner_pool_gpu.cu behind plain-pointer launchers.
#if GOOGLE_CUDA

using ::tensorflow::DEVICE_GPU;
namespace gpu = ::cornernet::corner_pool_gpu;

template <typename T> struct GpuDType;
template <> struct GpuDType<float> { static constexpr gpu::DType value = gpu::DType::kFloat32; };
template <> struct GpuDType<double> { static constexpr gpu::DType value = gpu::DType::kFloat64; };
template <> struct GpuDType<Eigen::half> {
  static constexpr gpu::DType value = gpu::DType::kFloat16;
};
template <> struct GpuDType<Eigen::bfloat16> {
  static constexpr gpu::DType value = gpu::DType::kBFloat16;
};

inline void* StreamOf(OpKernelContext* ctx) {
  return reinterpret_cast<void*>(ctx->eigen_device<Eigen::GpuDevice>().stream());
}

absl::Status LaunchStatus(const char* op, int err) {
  if (err == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(op, " CUDA launch failed: ", gpu::ErrorString(err)));
}

template <typename T>
class CornerPoolGpuOp : public CornerPoolOpBase {
 public:
  using CornerPoolOpBase::CornerPoolOpBase;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES_OK(ctx, CheckRank4("CornerPool", x));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    if (x.NumElements() == 0) return;
    const Geometry g = MakeGeometry(x.shape(), direction_);
    OP_REQUIRES_OK(ctx, LaunchStatus("CornerPool",
                                     gpu::LaunchForward(GpuDType<T>::value, x.flat<T>().data(),
                                                        y->flat<T>().data(), g.outer, g.len,
                                                        g.inner, g.from_end, StreamOf(ctx))));
  }
};

template <typename T>
class CornerPoolGradGpuOp : public CornerPoolOpBase {
 public:
  using CornerPoolOpBase::CornerPoolOpBase;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& y = ctx->input(0);
    const Tensor& dy = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckRank4("CornerPoolGrad", y));
    OP_REQUIRES(ctx, y.shape() == dy.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "CornerPoolGrad: y and dy shapes differ: ", y.shape().DebugString(), " vs ",
                    dy.shape().DebugString())));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({1}, 0, dy.shape(), &dx));
    if (y.NumElements() == 0) return;
    const Geometry g = MakeGeometry(y.shape(), direction_);
    OP_REQUIRES_OK(
        ctx, LaunchStatus("CornerPoolGrad",
                          gpu::LaunchBackward(GpuDType<T>::value, y.flat<T>().data(),
                                              dy.flat<T>().data(), dx->flat<T>().data(), g.outer,
                                              g.len, g.inner, g.from_end, StreamOf(ctx))));
  }
};

#define REGISTER_GPU(T)                                                                     \
  REGISTER_KERNEL_BUILDER(                                                                  \
      Name("CornerPool").Device(DEVICE_GPU).TypeConstraint<T>("T"), CornerPoolGpuOp<T>);   \
  REGISTER_KERNEL_BUILDER(Name("CornerPoolGrad").Device(DEVICE_GPU).TypeConstraint<T>("T"), \
                          CornerPoolGradGpuOp<T>);
REGISTER_GPU(Eigen::half)
REGISTER_GPU(Eigen::bfloat16)
REGISTER_GPU(float)
REGISTER_GPU(double)
#undef REGISTER_GPU

#endif  // GOOGLE_CUDA

}  // namespace
}  // namespace cornernet

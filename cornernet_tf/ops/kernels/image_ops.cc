// OpenCV's fixed-point INTER_LINEAR resize of a uint8 image as a TensorFlow CPU op.
//
//   CornerNetFixedPointResize(image, y0, b0, y1, b1, x0, a0, x1, a1) -> out
//
// image: uint8 [h, w, C]; y0, b0, y1, b1: int32 [out_h] (source rows and 11-bit weights per
// output row); x0, a0, x1, a1: int32 [out_w] (source columns and weights per output column).
// The taps are computed in Python (cornernet_tf/data/augment.py); this op only does the
// per-pixel arithmetic of `_fixed_point_resize` there, in the same int32 arithmetic, so the
// results are bit-identical:
//
//   horizontal, per needed source row r:  D[r][x, c] = (p[r, x0[x], c] * a0[x] + p[r, x1[x], c] * a1[x]) >> 4
//   vertical:  out[i, x, c] = uint8((((b0[i] * D[y0[i]][x, c]) >> 16) + ((b1[i] * D[y1[i]][x, c]) >> 16) + 2) >> 2)
//
// Only the source rows some output row reads go through the horizontal pass (two cached rows,
// recomputed on a miss, so any tap order is correct). Single-threaded: tf.data runs many images
// in parallel, and one image is a few milliseconds of work.
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"

namespace cornernet {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
namespace shape_inference = ::tensorflow::shape_inference;

REGISTER_OP("CornerNetFixedPointResize")
    .Input("image: uint8")
    .Input("y0: int32")
    .Input("b0: int32")
    .Input("y1: int32")
    .Input("b1: int32")
    .Input("x0: int32")
    .Input("a0: int32")
    .Input("x1: int32")
    .Input("a1: int32")
    .Output("out: uint8")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle image, rows, cols;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &image));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &rows));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(5), 1, &cols));
      c->set_output(0, c->MakeShape({c->Dim(rows, 0), c->Dim(cols, 0), c->Dim(image, 2)}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
OpenCV's fixed-point bilinear (INTER_LINEAR) resize of a uint8 HWC image, given the source
indices and 11-bit weights per output row (y0, b0, y1, b1) and column (x0, a0, x1, a1).
)doc");

namespace {

// One source row's horizontal pass into d[out_w * C].
template <int kChannels>
void HorizontalRow(const uint8_t* src, int channels, const int32_t* x0, const int32_t* a0,
                   const int32_t* x1, const int32_t* a1, int64_t out_w, int32_t* d) {
  const int C = kChannels > 0 ? kChannels : channels;
  for (int64_t x = 0; x < out_w; ++x) {
    const uint8_t* p0 = src + static_cast<int64_t>(x0[x]) * C;
    const uint8_t* p1 = src + static_cast<int64_t>(x1[x]) * C;
    const int32_t w0 = a0[x], w1 = a1[x];
    int32_t* out = d + x * C;
    for (int c = 0; c < C; ++c) {
      out[c] = (static_cast<int32_t>(p0[c]) * w0 + static_cast<int32_t>(p1[c]) * w1) >> 4;
    }
  }
}

void VerticalRow(const int32_t* d0, const int32_t* d1, int32_t w0, int32_t w1, int64_t n,
                 uint8_t* out) {
  for (int64_t k = 0; k < n; ++k) {
    out[k] = static_cast<uint8_t>((((w0 * d0[k]) >> 16) + ((w1 * d1[k]) >> 16) + 2) >> 2);
  }
}

}  // namespace

class FixedPointResizeOp : public OpKernel {
 public:
  explicit FixedPointResizeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& image = ctx->input(0);
    OP_REQUIRES(ctx, image.dims() == 3,
                absl::InvalidArgumentError(
                    absl::StrCat("image must be [h, w, C], got ", image.shape().DebugString())));
    for (int i = 1; i < 9; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).dims() == 1,
                  absl::InvalidArgumentError(absl::StrCat("tap input ", i, " must be 1-D, got ",
                                                          ctx->input(i).shape().DebugString())));
    }
    const int64_t h = image.dim_size(0), w = image.dim_size(1), channels = image.dim_size(2);
    const int64_t out_h = ctx->input(1).dim_size(0), out_w = ctx->input(5).dim_size(0);
    for (int i = 2; i <= 4; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).dim_size(0) == out_h,
                  absl::InvalidArgumentError("row taps y0, b0, y1, b1 differ in length"));
    }
    for (int i = 6; i <= 8; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).dim_size(0) == out_w,
                  absl::InvalidArgumentError("column taps x0, a0, x1, a1 differ in length"));
    }
    const int32_t* y0 = ctx->input(1).flat<int32_t>().data();
    const int32_t* b0 = ctx->input(2).flat<int32_t>().data();
    const int32_t* y1 = ctx->input(3).flat<int32_t>().data();
    const int32_t* b1 = ctx->input(4).flat<int32_t>().data();
    const int32_t* x0 = ctx->input(5).flat<int32_t>().data();
    const int32_t* a0 = ctx->input(6).flat<int32_t>().data();
    const int32_t* x1 = ctx->input(7).flat<int32_t>().data();
    const int32_t* a1 = ctx->input(8).flat<int32_t>().data();
    // Out-of-range indices are errors, as in tf.gather on the CPU.
    for (int64_t i = 0; i < out_h; ++i) {
      OP_REQUIRES(ctx, y0[i] >= 0 && y0[i] < h && y1[i] >= 0 && y1[i] < h,
                  absl::InvalidArgumentError(absl::StrCat("row tap ", i, " (", y0[i], ", ", y1[i],
                                                          ") outside [0, ", h, ")")));
    }
    for (int64_t x = 0; x < out_w; ++x) {
      OP_REQUIRES(ctx, x0[x] >= 0 && x0[x] < w && x1[x] >= 0 && x1[x] < w,
                  absl::InvalidArgumentError(absl::StrCat("column tap ", x, " (", x0[x], ", ",
                                                          x1[x], ") outside [0, ", w, ")")));
    }

    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({out_h, out_w, channels}), &out));
    const int64_t row_len = out_w * channels;
    if (out_h == 0 || row_len == 0) return;

    const uint8_t* src = image.flat<uint8_t>().data();
    uint8_t* dst = out->flat<uint8_t>().data();
    const int64_t src_row = w * channels;
    // Two cached horizontal-pass rows, tagged with their source row (-1: empty).
    std::vector<int32_t> buffer(2 * row_len);
    int32_t* slot[2] = {buffer.data(), buffer.data() + row_len};
    int64_t tag[2] = {-1, -1};
    auto horizontal = [&](int64_t r, int32_t* d) {
      const uint8_t* row = src + r * src_row;
      const int c = static_cast<int>(channels);
      if (channels == 3) {
        HorizontalRow<3>(row, c, x0, a0, x1, a1, out_w, d);
      } else if (channels == 1) {
        HorizontalRow<1>(row, c, x0, a0, x1, a1, out_w, d);
      } else {
        HorizontalRow<0>(row, c, x0, a0, x1, a1, out_w, d);
      }
    };
    // The slot holding row r, computing it into the slot not holding `keep` on a miss.
    auto fetch = [&](int64_t r, int64_t keep) -> const int32_t* {
      for (int s = 0; s < 2; ++s) {
        if (tag[s] == r) return slot[s];
      }
      const int s = (tag[0] == keep && keep >= 0) ? 1 : 0;
      horizontal(r, slot[s]);
      tag[s] = r;
      return slot[s];
    };
    for (int64_t i = 0; i < out_h; ++i) {
      const int32_t* d0 = fetch(y0[i], y1[i]);
      const int32_t* d1 = fetch(y1[i], y0[i]);
      VerticalRow(d0, d1, b0[i], b1[i], row_len, dst + i * row_len);
    }
  }
};

REGISTER_KERNEL_BUILDER(Name("CornerNetFixedPointResize").Device(DEVICE_CPU), FixedPointResizeOp);

}  // namespace cornernet

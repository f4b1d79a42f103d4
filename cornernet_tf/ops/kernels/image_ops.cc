// Two per-pixel passes of the training pipeline as TensorFlow CPU ops: OpenCV's fixed-point
// resize and the per-image colour map. Single-threaded: tf.data runs many images in parallel,
// and one image is a few milliseconds of work.
//
// 1. CornerNetFixedPointResize(image, y0, b0, y1, b1, x0, a0, x1, a1) -> out
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
// recomputed on a miss, so any tap order is correct).
//
// 2. CornerNetPixelAffine(images, affine) -> out
//
// images: uint8 [..., H, W, 3]; affine: float32 [..., 3, 4] (one map per image, from
// augment.pixel_affine); out: float32 [..., H, W, 3] with
//
//   out[c] = ((x0 * m[c][0] + x1 * m[c][1]) + x2 * m[c][2]) + m[c][3]
//
// in float32, each product and sum rounded in this order: the order of augment.apply_pixel_affine's
// TensorFlow ops, so the two agree bit for bit (the library is compiled with -ffp-contract=off,
// which keeps the compiler from fusing a product and a sum into one rounding).
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

REGISTER_OP("CornerNetPixelAffine")
    .Input("images: uint8")
    .Input("affine: float")
    .Output("out: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle images;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 3, &images));
      c->set_output(0, images);
      return absl::OkStatus();
    })
    .Doc(R"doc(
Per-image colour map of uint8 RGB images: out[c] = x0 m[c][0] + x1 m[c][1] + x2 m[c][2] + m[c][3]
in float32, summed in that order.
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

namespace {

// out = affine map of `pixels` RGB pixels, one map m[3][4].
void PixelAffine(const uint8_t* src, const float* m, int64_t pixels, float* dst) {
  const float m00 = m[0], m01 = m[1], m02 = m[2], m03 = m[3];
  const float m10 = m[4], m11 = m[5], m12 = m[6], m13 = m[7];
  const float m20 = m[8], m21 = m[9], m22 = m[10], m23 = m[11];
  for (int64_t p = 0; p < pixels; ++p) {
    const float x0 = src[3 * p], x1 = src[3 * p + 1], x2 = src[3 * p + 2];
    dst[3 * p] = ((x0 * m00 + x1 * m01) + x2 * m02) + m03;
    dst[3 * p + 1] = ((x0 * m10 + x1 * m11) + x2 * m12) + m13;
    dst[3 * p + 2] = ((x0 * m20 + x1 * m21) + x2 * m22) + m23;
  }
}

}  // namespace

class PixelAffineOp : public OpKernel {
 public:
  explicit PixelAffineOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& images = ctx->input(0);
    const Tensor& affine = ctx->input(1);
    const int rank = images.dims();
    OP_REQUIRES(ctx, rank >= 3 && images.dim_size(rank - 1) == 3,
                absl::InvalidArgumentError(absl::StrCat("images must be [..., H, W, 3], got ",
                                                        images.shape().DebugString())));
    bool affine_ok = affine.dims() == rank - 1 && affine.dim_size(rank - 3) == 3 &&
                     affine.dim_size(rank - 2) == 4;
    for (int i = 0; affine_ok && i < rank - 3; ++i) {
      affine_ok = affine.dim_size(i) == images.dim_size(i);
    }
    OP_REQUIRES(ctx, affine_ok,
                absl::InvalidArgumentError(absl::StrCat(
                    "affine must be [..., 3, 4] with the images' leading dimensions, got ",
                    affine.shape().DebugString(), " for images ", images.shape().DebugString())));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, images.shape(), &out));
    const int64_t pixels = images.dim_size(rank - 3) * images.dim_size(rank - 2);
    const int64_t count = pixels == 0 ? 0 : images.NumElements() / (3 * pixels);
    const uint8_t* src = images.flat<uint8_t>().data();
    const float* maps = affine.flat<float>().data();
    float* dst = out->flat<float>().data();
    for (int64_t n = 0; n < count; ++n) {
      PixelAffine(src + n * 3 * pixels, maps + n * 12, pixels, dst + n * 3 * pixels);
    }
  }
};

REGISTER_KERNEL_BUILDER(Name("CornerNetPixelAffine").Device(DEVICE_CPU), PixelAffineOp);

}  // namespace cornernet

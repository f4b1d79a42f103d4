// The corner heatmaps of a training batch drawn in one CPU pass (the dense input pipeline).
//
// CornerNetDrawHeatmaps(corners, radii, classes) -> tl, br    attrs: height, width, num_classes
//
// corners: int32 [B, K, 4] corner pixels (tl_x, tl_y, br_x, br_y); radii: float64 [B, K];
// classes: int32 [B, K], -1 in unused slots. tl, br: float32 [B, height, width, num_classes],
// zero except each object's Gaussian bump in its class channel, bumps max-merged.
//
// The arithmetic is that of cornernet_tf/targets.py (`_bump_pixels`, `draw_batch_heatmaps`),
// operation for operation in float64 (the library is built with -ffp-contract=off):
//
//   reach = int(floor(min(r, max(height, width))))     window |dx|, |dy| <= reach, cut by the map
//   sigma = (2 r + 1) / 6
//   value = exp(-(dx * dx + dy * dy) / (2 sigma * sigma)), 0 below float64 eps, then float32
//
// so the maps are those of the TensorFlow ops (tests/test_native_heatmaps.py compares them over
// every integer radius up to the map size). The TensorFlow ops spend most of their time building
// per-pixel index lists and filling and copying zero maps; here the zero maps are written once and
// only the bump pixels are touched. Single-threaded: tf.data runs batches in parallel.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

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

REGISTER_OP("CornerNetDrawHeatmaps")
    .Input("corners: int32")
    .Input("radii: double")
    .Input("classes: int32")
    .Output("tl: float")
    .Output("br: float")
    .Attr("height: int >= 1")
    .Attr("width: int >= 1")
    .Attr("num_classes: int >= 1")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle corners, radii, classes;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &corners));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &radii));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &classes));
      int64_t height, width, num_classes;
      TF_RETURN_IF_ERROR(c->GetAttr("height", &height));
      TF_RETURN_IF_ERROR(c->GetAttr("width", &width));
      TF_RETURN_IF_ERROR(c->GetAttr("num_classes", &num_classes));
      auto maps = c->MakeShape({c->Dim(corners, 0), height, width, num_classes});
      c->set_output(0, maps);
      c->set_output(1, maps);
      return absl::OkStatus();
    })
    .Doc(R"doc(
The tl and br Gaussian corner heatmaps [B, height, width, num_classes] of a batch, from each
object's corner pixels, radius and class (-1: no object), bumps max-merged.
)doc");

namespace {

struct MapGeometry {
  int64_t height, width, channels;
};

// Max-merges one object's bump (centre cx, cy, radius r, channel cls) into map [H, W, C].
void DrawBump(float* map, const MapGeometry& g, int64_t cx, int64_t cy, double r, int64_t cls) {
  const double longest = static_cast<double>(std::max(g.height, g.width));
  const double bounded = std::floor(std::min(r, longest));
  if (!(bounded >= 0.0)) return;  // a negative radius has no pixel, as in the TensorFlow ops
  const int64_t reach = static_cast<int64_t>(bounded);
  const int64_t x0 = std::max<int64_t>(cx - reach, 0), x1 = std::min(cx + reach, g.width - 1);
  const int64_t y0 = std::max<int64_t>(cy - reach, 0), y1 = std::min(cy + reach, g.height - 1);
  const double sigma = (2.0 * r + 1.0) / 6.0;
  const double denom = 2.0 * sigma * sigma;
  for (int64_t y = y0; y <= y1; ++y) {
    const double dy = static_cast<double>(y - cy);
    float* row = map + (y * g.width) * g.channels + cls;
    for (int64_t x = x0; x <= x1; ++x) {
      const double dx = static_cast<double>(x - cx);
      double value = std::exp(-(dx * dx + dy * dy) / denom);
      if (value < DBL_EPSILON) value = 0.0;
      float* pixel = row + x * g.channels;
      *pixel = std::max(*pixel, static_cast<float>(value));
    }
  }
}

}  // namespace

class DrawHeatmapsOp : public OpKernel {
 public:
  explicit DrawHeatmapsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("height", &geometry_.height));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("width", &geometry_.width));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_classes", &geometry_.channels));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& corners = ctx->input(0);
    const Tensor& radii = ctx->input(1);
    const Tensor& classes = ctx->input(2);
    OP_REQUIRES(ctx,
                corners.dims() == 3 && corners.dim_size(2) == 4 && radii.dims() == 2 &&
                    classes.dims() == 2 && radii.dim_size(0) == corners.dim_size(0) &&
                    radii.dim_size(1) == corners.dim_size(1) &&
                    classes.shape() == radii.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "corners must be [B, K, 4] with radii and classes [B, K], got corners ",
                    corners.shape().DebugString(), ", radii ", radii.shape().DebugString(),
                    ", classes ", classes.shape().DebugString())));
    const int64_t batch = corners.dim_size(0), slots = corners.dim_size(1);
    const auto c = corners.tensor<int32_t, 3>();
    const auto r = radii.matrix<double>();
    const auto k = classes.matrix<int32_t>();
    for (int64_t b = 0; b < batch; ++b) {  // check everything before writing anything
      for (int64_t n = 0; n < slots; ++n) {
        OP_REQUIRES(ctx, k(b, n) < geometry_.channels,
                    absl::InvalidArgumentError(absl::StrCat(
                        "class ", k(b, n), " of object ", n, " in image ", b,
                        " is not below num_classes=", geometry_.channels)));
        OP_REQUIRES(ctx, k(b, n) < 0 || !std::isnan(r(b, n)),
                    absl::InvalidArgumentError(absl::StrCat("radius of object ", n,
                                                            " in image ", b, " is NaN")));
      }
    }
    const TensorShape shape(
        {batch, geometry_.height, geometry_.width, geometry_.channels});
    Tensor* maps[2] = {nullptr, nullptr};
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &maps[0]));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, shape, &maps[1]));
    const int64_t per_image = geometry_.height * geometry_.width * geometry_.channels;
    for (int kind = 0; kind < 2; ++kind) {
      float* data = maps[kind]->flat<float>().data();
      std::memset(data, 0, sizeof(float) * per_image * batch);
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t n = 0; n < slots; ++n) {
          if (k(b, n) < 0) continue;
          DrawBump(data + b * per_image, geometry_, c(b, n, 2 * kind), c(b, n, 2 * kind + 1),
                   r(b, n), k(b, n));
        }
      }
    }
  }

 private:
  MapGeometry geometry_;
};

REGISTER_KERNEL_BUILDER(Name("CornerNetDrawHeatmaps").Device(DEVICE_CPU), DrawHeatmapsOp);

}  // namespace cornernet

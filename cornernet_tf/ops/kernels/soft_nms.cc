// The official CornerNet soft-NMS (external/nms.pyx), compiled: plain C functions, no TensorFlow.
//
// The NumPy port (cornernet_tf/detection/soft_nms.py) runs one round of NumPy calls per kept
// box; this is the sequential original, statement by statement, so results are bit-identical
// to that port (tests/test_soft_nms.py) while running at compiled speed. Loaded with ctypes by
// cornernet_tf/detection/soft_nms_native.py; built by `python -m cornernet_tf.ops.build`.
//
// Precision follows the compiled Cython: its variables are C floats, but integer literals
// (`+ 1`, `1 -`) promote the expression they touch to double and each assignment rounds back
// to float; exp runs in double; pow runs in double on a base rounded to float. The build turns
// off floating-point contraction (-ffp-contract=off): a fused multiply-add would change bits.
//
// Layout: `boxes` is a C-contiguous float32 array [n, cols], rows [x1, y1, x2, y2, score,
// tl_score, br_score, ...], modified in place. Only columns 0-4 move (the best-box swap and the
// drop copy); columns 5 and up stay with their row. A box whose score decays below `threshold`
// is dropped by copying the last live row's columns 0-4 over it; rows past the returned live
// count are stale. The loop still visits stale rows, as the original's `for i in range(N)`
// evaluates N once: in the merge variant each stale row's coordinates become (x * s) / s.

#include <cmath>
#include <cstdint>

namespace {

// np.minimum / np.maximum, which the NumPy port uses: a NaN operand wins.
inline float np_min(float a, float b) {
  if (std::isnan(a)) return a;
  if (std::isnan(b)) return b;
  return b < a ? b : a;
}

inline float np_max(float a, float b) {
  if (std::isnan(a)) return a;
  if (std::isnan(b)) return b;
  return b > a ? b : a;
}

int64_t run(float* boxes, int64_t rows, int64_t cols, float sigma, float nt, float threshold,
            int method, bool merge, float weight_exp) {
  if (boxes == nullptr && rows > 0) return -1;
  if (rows < 0 || cols < (merge ? 7 : 5)) return -1;
  int64_t n = rows;  // the live count; the loop below still runs over all `rows`
  for (int64_t i = 0; i < rows; ++i) {
    float* bi = boxes + i * cols;

    // The best box among rows i..n-1: the first maximum (np.argmax; a NaN score counts as the
    // maximum, as in NumPy; the original's strict '<' scan is the same for finite scores).
    int64_t maxpos = i;
    float maxscore = bi[4];
    for (int64_t pos = i + 1; pos < n; ++pos) {
      const float s = boxes[pos * cols + 4];
      if (maxscore < s || (std::isnan(s) && !std::isnan(maxscore))) {
        maxscore = s;
        maxpos = pos;
      }
    }
    if (maxpos != i) {
      float* bm = boxes + maxpos * cols;
      for (int k = 0; k < 5; ++k) {
        const float t = bi[k];
        bi[k] = bm[k];
        bm[k] = t;
      }
    }

    const float tx1 = bi[0], ty1 = bi[1], tx2 = bi[2], ty2 = bi[3];
    float mx1 = 0.0f, my1 = 0.0f, mx2 = 0.0f, my2 = 0.0f, mts = 0.0f, mbs = 0.0f;
    if (merge) {
      mx1 = bi[0] * bi[5];
      my1 = bi[1] * bi[5];
      mx2 = bi[2] * bi[6];
      my2 = bi[3] * bi[6];
      mts = bi[5];
      mbs = bi[6];
    }
    const double best_area = ((double)(tx2 - tx1) + 1) * ((double)(ty2 - ty1) + 1);

    for (int64_t pos = i + 1; pos < n; ++pos) {
      float* bp = boxes + pos * cols;
      const float x1 = bp[0], y1 = bp[1], x2 = bp[2], y2 = bp[3];
      const float area = (float)(((double)(x2 - x1) + 1) * ((double)(y2 - y1) + 1));
      const float iw = (float)((double)(np_min(tx2, x2) - np_max(tx1, x1)) + 1);
      if (!(iw > 0)) continue;
      const float ih = (float)((double)(np_min(ty2, y2) - np_max(ty1, y1)) + 1);
      if (!(ih > 0)) continue;
      const float inter = iw * ih;
      const float ua = (float)((best_area + (double)area) - (double)inter);
      const float ov = inter / ua;
      float weight;
      if (method == 1) {
        weight = ov > nt ? (float)(1 - (double)ov) : 1.0f;
      } else if (method == 2) {
        const float e = -(ov * ov) / sigma;
        weight = (float)std::exp((double)e);
      } else {
        weight = ov > nt ? 0.0f : 1.0f;
      }
      if (merge) {
        const float base = (float)(1 - (double)weight);
        const float mw = (float)std::pow((double)base, (double)weight_exp);
        mx1 = mx1 + bp[0] * bp[5] * mw;
        my1 = my1 + bp[1] * bp[5] * mw;
        mx2 = mx2 + bp[2] * bp[6] * mw;
        my2 = my2 + bp[3] * bp[6] * mw;
        mts = mts + bp[5] * mw;
        mbs = mbs + bp[6] * mw;
      }
      bp[4] = weight * bp[4];
      if (bp[4] < threshold) {
        const float* last = boxes + (n - 1) * cols;
        for (int k = 0; k < 5; ++k) bp[k] = last[k];
        n -= 1;
        pos -= 1;
      }
    }

    if (merge) {
      bi[0] = mx1 / mts;
      bi[1] = my1 / mts;
      bi[2] = mx2 / mbs;
      bi[3] = my2 / mbs;
    }
  }
  return n;
}

}  // namespace

extern "C" {

// Bumped whenever a signature below changes; the loader refuses a library of another version.
int soft_nms_abi_version() { return 1; }

// Official soft_nms on boxes [rows, cols >= 5], in place; returns the live count (-1: bad args).
int64_t soft_nms(float* boxes, int64_t rows, int64_t cols, float sigma, float nt,
                 float threshold, int method) {
  return run(boxes, rows, cols, sigma, nt, threshold, method, false, 0.0f);
}

// Official soft_nms_merge on boxes [rows, cols >= 7], in place; returns the live count.
int64_t soft_nms_merge(float* boxes, int64_t rows, int64_t cols, float sigma, float nt,
                       float threshold, int method, float weight_exp) {
  return run(boxes, rows, cols, sigma, nt, threshold, method, true, weight_exp);
}

}  // extern "C"

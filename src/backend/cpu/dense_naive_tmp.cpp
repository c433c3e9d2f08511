// Naive plain-format linear (f32/bf16/fp16 weights) so that the quantized kernels link and test before the
// optimized dense kernels are merged.
#include <vector>

#include "backend/cpu/qlinear.h"
#include "formats/codec.h"
#include "util/error.h"

namespace lowbit {

void dense_linear(const float* x, int64_t M, const QTensor& W, float* y) {
  LB_CHECK(W.info().scheme == ScaleScheme::None, "dense_linear: ", W.info().name, " is not a plain format (tensor '",
           W.name, "')");
  const int64_t N = W.rows, K = W.cols;
#pragma omp parallel
  {
    std::vector<float> w(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      decode_row_range(W, n, 0, K, w.data());
      for (int64_t m = 0; m < M; ++m) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * w[k];
        y[m * N + n] = acc;
      }
    }
  }
}

}  // namespace lowbit

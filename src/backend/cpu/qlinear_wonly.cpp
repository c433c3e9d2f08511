// Weight-only quantized linear (fp32 activations x any quantized weight format).
#include "backend/cpu/qlinear_kernels.h"
#include "backend/cpu/qlinear_tiled.h"
#include "backend/cpu/decode_simd.h"

namespace lowbit::cpu {

void linear_weight_only(const float* x, int64_t M, const QTensor& W, float* y) {
  tiled_linear_f32(
      x, M, W.rows, W.cols,
      [&](int64_t n, int64_t k0, int64_t k1, float* out) { decode_chunk(W, n, k0, k1, true, out); },
      [](int64_t, int64_t, float acc) { return acc; }, y);
}

}  // namespace lowbit::cpu

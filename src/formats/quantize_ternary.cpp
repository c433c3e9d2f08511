// BitNet b1.58 ternary weights, one absmean scale per tensor:
//   gamma = max(mean|W|, 1e-5) (the mean accumulated in double, then rounded to fp32),
//   q = clamp(rne(W / gamma), -1, 1), W' = q * gamma.
// Stored as 2-bit codes q+1 (ternary) or 5 trits per byte, byte = sum_t (q_t + 1) * 3^t (ternary-1.6; the
// missing trits of a row's partial last byte are digit 0). A non-finite weight makes gamma NaN (all codes
// q = 0): the whole tensor decodes to NaN.
#include <algorithm>
#include <cmath>

#include "formats/codec.h"
#include "formats/quant_internal.h"

namespace lowbit::detail {

void quantize_ternary(const float* x, QTensor& t) {
  const ElemType e = t.info().elem;
  LB_CHECK(e == ElemType::T2 || e == ElemType::T5, "quantize ", t.info().name, ": not a ternary format");
  const int64_t rows = t.rows, cols = t.cols, n = rows * cols;
  double sum = 0.0;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    finite = finite && std::isfinite(x[i]);
    sum += std::fabs(double(x[i]));
  }
  const float gamma = finite ? std::max(float(sum / double(n)), 1e-5f) : NAN;
  t.tensor_scale = gamma;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* codes = t.codes.mutable_data() + size_t(r) * t.row_bytes();
    for (int64_t j = 0; j < cols; ++j) {
      const float q = finite ? std::clamp(std::nearbyint(x[r * cols + j] / gamma), -1.0f, 1.0f) : 0.0f;
      put_code(codes, e, j, uint32_t(int(q) + 1));
    }
  }
}

}  // namespace lowbit::detail

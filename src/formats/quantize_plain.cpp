// Plain float formats: f32 copy, bf16 and fp16 RNE casts. NaN stays NaN; fp16 overflow becomes ±Inf
// (the IEEE cast: these formats carry Inf, unlike the saturating low-bit element types).
#include <cstring>

#include "formats/quant_internal.h"
#include "util/half.h"

namespace lowbit::detail {

void quantize_plain(const float* x, QTensor& t) {
  const int64_t n = t.rows * t.cols;
  uint8_t* out = t.codes.mutable_data();
  switch (t.info().elem) {
    case ElemType::F32: std::memcpy(out, x, size_t(n) * 4); return;
    case ElemType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case ElemType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    default: fail("quantize_plain: ", t.info().name, " is not a plain float format");
  }
}

}  // namespace lowbit::detail

// Formats with one fp32 scale per row or per tensor: fp8 E4M3/E5M2 (per row and per tensor), fp6
// E3M2/E2M3 (per row) and int8 (per row, expressed through the torchao affine primitives).
//   minifloat: s = amax / max_elem (s = 1 when that is 0), q = rne_sat(x / s), x' = elem(q) * s
//   int8:      s = max(amax / 127, 2^-23), q = clamp(rne(x * (1/s)), -128, 127), x' = q * s
// A non-finite value makes its unit's scale NaN (codes 0): the row (or tensor) decodes to NaN.
#include <algorithm>
#include <cmath>

#include "formats/affine.h"
#include "formats/codec.h"
#include "formats/quant_internal.h"

namespace lowbit::detail {

namespace {

struct Range {
  float amax = 0.0f, lo = INFINITY, hi = -INFINITY;
  bool finite = true;
};
Range range_of(const float* x, int64_t n) {
  Range r;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) r.finite = false;
    r.amax = std::max(r.amax, std::fabs(v));
    r.lo = std::min(r.lo, v);
    r.hi = std::max(r.hi, v);
  }
  return r;
}

// s = amax / max_elem; amax 0 (or an fp32 underflow of the quotient) -> s = 1 so that every code is 0.
float minifloat_scale(const Range& r, float max_elem) {
  if (!r.finite) return NAN;
  const float s = r.amax / max_elem;
  return s == 0.0f ? 1.0f : s;
}

template <typename Codec>
void encode_minifloat_row(const float* x, int64_t n, float s, ElemType e, uint8_t* codes) {
  if (!std::isfinite(s)) return;  // NaN unit: codes stay 0
  for (int64_t j = 0; j < n; ++j) put_code(codes, e, j, codec_encode<Codec>(x[j] / s));
}

// int8 per row: torchao's choose_qparams_affine(SYMMETRIC, quant range [-127, 127], eps = finfo(f32).eps,
// zero-point domain NONE) and quantize_affine with the full int8 range [-128, 127].
AffineSpec int8_choose_spec() {
  AffineSpec s;
  s.mapping = MappingType::Symmetric;
  s.quant_min = -127;
  s.quant_max = 127;
  s.domain = ZeroPointDomain::None;
  return s;
}
AffineSpec int8_quant_spec() {
  AffineSpec s = int8_choose_spec();
  s.quant_min = -128;
  return s;
}

}  // namespace

void quantize_row_scaled(const float* x, QTensor& t) {
  const FormatInfo& fi = t.info();
  const int64_t rows = t.rows, cols = t.cols;
  uint8_t* scales = t.scales.mutable_data();

  if (fi.elem == ElemType::I8) {
    LB_CHECK(fi.scheme == ScaleScheme::RowF32, "quantize ", fi.name, ": int8 takes a per-row scale");
    const AffineSpec choose = int8_choose_spec(), quant = int8_quant_spec();
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      uint8_t* codes = t.codes.mutable_data() + size_t(r) * t.row_bytes();
      const Range rg = range_of(xr, cols);
      if (!rg.finite) {
        store_f32(scales + 4 * r, NAN);
        continue;
      }
      const AffineBlockParams p = choose_qparams_affine_block(rg.lo, rg.hi, choose);
      store_f32(scales + 4 * r, p.scale);
      for (int64_t j = 0; j < cols; ++j) codes[j] = uint8_t(int8_t(quantize_affine_value(xr[j], p, quant)));
    }
    return;
  }

  with_elem_codec(fi.elem, fi.name, [&](auto codec) {
    using Codec = decltype(codec);
    const float max_elem = codec_max_value<Codec>();
    if (fi.scheme == ScaleScheme::TensorF32) {
      const Range rg = range_of(x, rows * cols);
      t.tensor_scale = minifloat_scale(rg, max_elem);
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
      for (int64_t r = 0; r < rows; ++r)
        encode_minifloat_row<Codec>(x + r * cols, cols, t.tensor_scale, fi.elem,
                                    t.codes.mutable_data() + size_t(r) * t.row_bytes());
      return;
    }
    LB_CHECK(fi.scheme == ScaleScheme::RowF32, "quantize ", fi.name, ": unexpected scale scheme");
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      const float s = minifloat_scale(range_of(x + r * cols, cols), max_elem);
      store_f32(scales + 4 * r, s);
      encode_minifloat_row<Codec>(x + r * cols, cols, s, fi.elem, t.codes.mutable_data() + size_t(r) * t.row_bytes());
    }
  });
}

}  // namespace lowbit::detail

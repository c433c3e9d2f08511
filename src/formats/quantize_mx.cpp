// OCP MX formats (MXFP8 E4M3/E5M2, MXFP6 E3M2/E2M3, MXFP4, MXINT8): blocks of 32 along the row, one E8M0
// scale X per block, elements = cast(v / X) with RNE and saturation.
//   FLOOR (default): X = 2^(floor(log2 amax) - emax_elem), exponent clamped to [-127, 127].
//   RCEIL: the scale byte is the fp32 exponent field of amax / max_elem, rounded up.
// amax 0 -> scale 0x00 with zero elements; a non-finite value -> scale 0xFF (NaN), the block decodes to NaN.
// search_scales: the scale bytes one below and one above are tried too; the lowest squared error wins
// (ties keep the rule's byte).
#include <algorithm>
#include <cmath>

#include "formats/codec.h"
#include "formats/quant_internal.h"

namespace lowbit::detail {

namespace {

template <typename Codec>
double block_sq_error(const float* v, int64_t n, uint8_t byte) {
  const float X = E8M0::decode(byte);
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(codec_decode<Codec>(codec_encode<Codec>(v[i] / X)) * X) - double(v[i]);
    e += d * d;
  }
  return e;
}

}  // namespace

void quantize_mx(const float* x, QTensor& t, const QuantOptions& o) {
  const FormatInfo& fi = t.info();
  const int64_t rows = t.rows, cols = t.cols, bs = fi.block, nb = t.nscales_per_row();
  with_elem_codec(fi.elem, fi.name, [&](auto codec) {
    using Codec = decltype(codec);
    const int emax = codec_emax<Codec>();
    const float max_elem = codec_max_value<Codec>();
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* codes = t.codes.mutable_data() + size_t(r) * t.row_bytes();
      uint8_t* scales = t.scales.mutable_data() + size_t(r * nb);
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t k0 = b * bs, n = std::min(cols, k0 + bs) - k0;
        const float* v = x + r * cols + k0;
        float amax;
        if (!block_amax(v, n, amax)) {
          scales[b] = E8M0::kNan;
          continue;
        }
        uint8_t byte = t.rule == ScaleRule::Floor ? E8M0::floor_scale(amax, emax) : E8M0::rceil_scale(amax, max_elem);
        if (byte == E8M0::kNan) {
          // RCEIL of a descale >= 2^127 (only MXINT8 can get there, with amax near FLT_MAX): the largest
          // finite scale instead of a NaN block for finite data
          byte = 0xfe;
        }
        if (o.search_scales && amax > 0.0f) {
          double best = block_sq_error<Codec>(v, n, byte);
          const uint8_t base = byte;
          for (int d : {-1, 1}) {
            const int cand = int(base) + d;
            if (cand < 0 || cand > 0xfe) continue;
            const double e = block_sq_error<Codec>(v, n, uint8_t(cand));
            if (e < best) {
              best = e;
              byte = uint8_t(cand);
            }
          }
        }
        scales[b] = byte;
        const float X = E8M0::decode(byte);
        for (int64_t i = 0; i < n; ++i) put_code(codes, fi.elem, k0 + i, codec_encode<Codec>(v[i] / X));
      }
    }
  });
}

}  // namespace lowbit::detail

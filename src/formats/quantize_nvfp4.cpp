// NVFP4 after TransformerEngine (same fp32 operation order, so the codes match TE bit for bit):
//   S_enc   = 2688 / tensor_amax        (2688 = 448 * 6; S_enc = 1 if amax is 0 or the quotient is not a
//                                         finite non-zero number)
//   S_dec_b = e4m3_rne_sat(block_amax * (S_enc * fl(1/6)))        per block of 16
//   q       = e2m1_rne_sat(x * fl(1 / (S_dec_b * fl(1 / S_enc))))  (q = 0 where S_dec_b == 0)
//   x'      = e2m1(q) * fl(S_dec_b / S_enc)
// tensor_amax is over the finite values; a block holding a non-finite value gets the E4M3 NaN scale
// (0x7F) and decodes to NaN. For per-token activations the "tensor" is the token row (quantize_per_token).
// search_scales: the E4M3 scale codes within one binade below and above (8 codes each way) are tried too;
// the lowest squared block error wins (ties keep TE's code).
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "formats/codec.h"
#include "formats/quant_internal.h"

namespace lowbit::detail {

namespace {

constexpr float kOneSixth = 1.0f / 6.0f;
// Scale search radius in E4M3 codes: 3 mantissa bits give 8 codes per binade, so +-8 spans a factor of 2
// either way. On SmolLM2 the squared weight error keeps falling well past +-1 (a smaller scale that clips
// the block's largest element often fits E2M1's uneven grid better), and so does KL (docs/quality.md).
constexpr int kScaleSearchCodes = 8;

float nvfp4_encode_scale(float tensor_amax) {
  const float s = 448.0f * 6.0f / tensor_amax;
  if (tensor_amax == 0.0f || !std::isfinite(s) || s == 0.0f) return 1.0f;
  return s;
}

// The element multiplier for a block scale code (TE's compute_scaling_coefficient<float>).
float elem_scale(float s_dec, float s_enc) { return std::min(1.0f / (s_dec * (1.0f / s_enc)), FLT_MAX); }

}  // namespace

float e2m1_round_fast(float x) {
  // the E2M1 grid 0 .5 1 1.5 2 3 4 6: midpoints .25 .75 1.25 1.75 2.5 3.5 5; an exact tie goes to the even
  // code (0, 1, 1, 2, 2, 4, 4), hence <= at the midpoints below an even code and < above one
  // (branch-free: the steps between neighbouring grid values are summed, so the loop vectorizes; beyond 5
  // everything lands on 6, the codec's saturation)
  const float a = std::fabs(x);
  const float r = 0.5f * float(a > 0.25f) + 0.5f * float(a >= 0.75f) + 0.5f * float(a > 1.25f) +
                  0.5f * float(a >= 1.75f) + 1.0f * float(a > 2.5f) + 1.0f * float(a >= 3.5f) + 2.0f * float(a > 5.0f);
  return std::copysign(r, x);
}

namespace {

double block_sq_error(const float* v, int64_t n, uint8_t sc, float s_enc) {
  const float s_dec = FP8E4M3::decode(sc);
  const float es = elem_scale(s_dec, s_enc), f = s_dec / s_enc;
  if (s_dec == 0.0f) {
    double e = 0.0;
    for (int64_t i = 0; i < n; ++i) e += double(v[i]) * double(v[i]);
    return e;
  }
  // squared errors first (a loop without a reduction vectorizes), then their sum in double
  float sq[16];  // n <= 16: one NVFP4 block
  for (int64_t i = 0; i < n; ++i) {
    const float d = e2m1_round_fast(v[i] * es) * f - v[i];
    sq[i] = d * d;
  }
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i) e += double(sq[i]);
  return e;
}

}  // namespace

void quantize_nvfp4(const float* x, QTensor& t, const QuantOptions& o) {
  const int64_t rows = t.rows, cols = t.cols, bs = t.info().block, nb = t.nscales_per_row();
  float tensor_amax = 0.0f;
  for (int64_t i = 0; i < rows * cols; ++i)
    if (std::isfinite(x[i])) tensor_amax = std::max(tensor_amax, std::fabs(x[i]));
  const float s_enc = nvfp4_encode_scale(tensor_amax);
  t.tensor_scale = s_enc;

#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* codes = t.codes.mutable_data() + size_t(r) * t.row_bytes();
    uint8_t* scales = t.scales.mutable_data() + size_t(r * nb);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t k0 = b * bs, n = std::min(cols, k0 + bs) - k0;
      const float* v = x + r * cols + k0;
      float amax;
      if (!block_amax(v, n, amax)) {
        scales[b] = uint8_t(FP8E4M3::kNan);
        continue;
      }
      uint8_t sc = uint8_t(FP8E4M3::encode(amax * (s_enc * kOneSixth)));
      if (o.search_scales && amax > 0.0f) {
        double best = block_sq_error(v, n, sc, s_enc);
        const int base = sc;
        for (int d = -kScaleSearchCodes; d <= kScaleSearchCodes; ++d) {
          const int cand = base + d;
          if (d == 0) continue;
          if (cand < 0 || cand > int(FP8E4M3::kMaxMag)) continue;
          const double e = block_sq_error(v, n, uint8_t(cand), s_enc);
          if (e < best) {
            best = e;
            sc = uint8_t(cand);
          }
        }
      }
      scales[b] = sc;
      const float s_dec = FP8E4M3::decode(sc);
      if (s_dec == 0.0f) continue;  // codes stay 0
      const float es = elem_scale(s_dec, s_enc);
      for (int64_t i = 0; i < n; ++i) put_code(codes, ElemType::E2M1, k0 + i, FP4E2M1::encode(v[i] * es));
    }
  }
}

}  // namespace lowbit::detail

// Group-affine unsigned formats int4/int2/int1 (RTN) and their -hqq variants. Per group of `group`
// columns (the last group of a row may be partial):
//   RTN: torchao choose_qparams_affine(ASYMMETRIC, FLOAT zero-point domain, preserve_zero = false) with
//        bf16 scale and offset: s = max((max - min) / (2^b - 1), FLT_MIN), m = min, both rounded to bf16
//        first; then q = clamp(rne((x - m) / s), 0, 2^b - 1) with the stored s, m; x' = fma(q, s, m).
//   HQQ: the zero point is refined by HQQ's half-quadratic proximal iterations (docs/formats.md), stored
//        as the same bf16 pair (s = 1/s_inv, m = -z * s); codes are then re-chosen as above, so they are
//        the nearest for the stored parameters, and the group keeps the RTN parameters when those give
//        the lower mean absolute error.
// A non-finite value in a group makes its scale and offset NaN (codes 0): the group decodes to NaN.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "formats/affine.h"
#include "formats/codec.h"
#include "formats/quant_internal.h"
#include "util/half.h"

namespace lowbit::detail {

namespace {

AffineSpec group_spec(int bits, int group) {
  AffineSpec s;
  s.mapping = MappingType::Asymmetric;
  s.block_rows = 1;
  s.block_cols = group;
  s.quant_min = 0;
  s.quant_max = (1 << bits) - 1;
  s.eps = FLT_MIN;  // only guards s = 0 (constant group); torchao's int4 eps 1e-6 would floor small ranges
  s.scale_dtype = ParamDType::BF16;
  s.zero_dtype = ParamDType::BF16;
  s.preserve_zero = false;
  s.domain = ZeroPointDomain::Float;
  return s;
}

double abs_error(const float* x, int64_t n, const AffineBlockParams& p, const AffineSpec& spec) {
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i)
    e += std::fabs(double(x[i]) - double(dequantize_affine_value(quantize_affine_value(x[i], p, spec), p, spec)));
  return e;
}

// HQQ zero-point optimisation of one group (fp32, like hqq on CPU). Returns the zero point with the lowest
// mean |W - W_r| over the iterations; s_inv is HQQ's inverse scale.
float hqq_optimize_zero(const float* w, int64_t n, float s_inv, float z0, float qmax, const QuantOptions& o) {
  const float p = o.hqq_p;
  float beta = o.hqq_beta, z = z0;
  float best_z = z0;
  double best_err = INFINITY;
  for (int it = 0; it < o.hqq_iters; ++it) {
    double err = 0.0, zsum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float wq = std::clamp(std::nearbyint(w[i] * s_inv + z), 0.0f, qmax);
      const float wr = (wq - z) / s_inv;
      const float e = w[i] - wr;
      err += std::fabs(e);
      // shrink_lp(e) = sign(e) * relu(|e| - |e|^(p-1) / beta); e = 0 gives |e|^(p-1) = inf and a 0 result
      const float ae = std::fabs(e);
      const float shrunk = ae > 0.0f ? std::max(ae - std::pow(ae, p - 1.0f) / beta, 0.0f) : 0.0f;
      const float we = std::copysign(shrunk, e);
      zsum += double(wq - (w[i] - we) * s_inv);
    }
    err /= double(n);
    if (err < best_err) {
      best_err = err;
      best_z = z;
    } else {
      break;  // error stopped decreasing
    }
    z = float(zsum / double(n));
    beta *= o.hqq_kappa;  // the paper's and torchao's schedule (current hqq releases keep beta fixed)
  }
  return best_z;
}

AffineBlockParams hqq_params(const float* w, int64_t n, float lo, float hi, const AffineSpec& spec,
                             const QuantOptions& o) {
  const float qmax = float(spec.quant_max);
  const float range = hi - lo;
  // hqq's guards: a (near-)constant group keeps s_inv = 1; s_inv is capped at 2e4
  const float s_inv = std::fabs(range) <= 1e-4f ? 1.0f : std::min(qmax / range, 2e4f);
  const float z = hqq_optimize_zero(w, n, s_inv, -lo * s_inv, qmax, o);
  const float scale = 1.0f / s_inv;
  AffineBlockParams p;
  p.scale = round_to(spec.scale_dtype, scale);
  p.zero_point = round_to(spec.zero_dtype, -z * scale);
  return p;
}

}  // namespace

void quantize_group_affine(const float* x, QTensor& t, const QuantOptions& o) {
  const FormatInfo& fi = t.info();
  const int bits = elem_bits(fi.elem);
  const int64_t rows = t.rows, cols = t.cols, g = t.group, ng = t.nscales_per_row();
  const AffineSpec spec = group_spec(bits, int(g));
  const bool hqq = fi.method == Method::Hqq;
  uint16_t* scales = reinterpret_cast<uint16_t*>(t.scales.mutable_data());
  uint16_t* offsets = reinterpret_cast<uint16_t*>(t.offsets.mutable_data());

#pragma omp parallel for schedule(dynamic, 4) if (rows * cols > (1 << 14))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    uint8_t* codes = t.codes.mutable_data() + size_t(r) * t.row_bytes();
    for (int64_t gi = 0; gi < ng; ++gi) {
      const int64_t k0 = gi * g, n = std::min(cols, k0 + g) - k0;
      const float* xg = xr + k0;
      float lo = INFINITY, hi = -INFINITY;
      bool finite = true;
      for (int64_t i = 0; i < n; ++i) {
        finite = finite && std::isfinite(xg[i]);
        lo = std::min(lo, xg[i]);
        hi = std::max(hi, xg[i]);
      }
      if (!finite) {
        scales[r * ng + gi] = f32_to_bf16(NAN);
        offsets[r * ng + gi] = f32_to_bf16(NAN);
        continue;
      }
      AffineBlockParams p = choose_qparams_affine_block(lo, hi, spec);
      if (hqq && o.hqq_iters > 0) {
        const AffineBlockParams ph = hqq_params(xg, n, lo, hi, spec, o);
        if (abs_error(xg, n, ph, spec) <= abs_error(xg, n, p, spec)) p = ph;
      }
      scales[r * ng + gi] = f32_to_bf16(p.scale);  // exact: already rounded to bf16
      offsets[r * ng + gi] = f32_to_bf16(p.zero_point);
      for (int64_t i = 0; i < n; ++i) put_code(codes, fi.elem, k0 + i, uint32_t(quantize_affine_value(xg[i], p, spec)));
    }
  }
}

}  // namespace lowbit::detail

#include "formats/affine.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"
#include "util/half.h"

namespace lowbit {

float round_to(ParamDType t, float v) {
  switch (t) {
    case ParamDType::F32: return v;
    case ParamDType::BF16: return round_bf16(v);
    case ParamDType::F16: return round_f16(v);
  }
  return v;
}

void validate_affine_spec(const AffineSpec& spec) {
  LB_CHECK(spec.quant_min < spec.quant_max, "affine spec: quant_min ", spec.quant_min,
           " must be below quant_max ", spec.quant_max);
  // codes travel through fp32 arithmetic: keep them exactly representable
  LB_CHECK(spec.quant_min >= -(1 << 24) && spec.quant_max <= (1 << 24), "affine spec: quant range [",
           spec.quant_min, ", ", spec.quant_max, "] exceeds +-2^24");
  LB_CHECK(spec.block_rows >= 0 && spec.block_cols >= 0, "affine spec: negative block size (", spec.block_rows,
           ", ", spec.block_cols, ")");
  LB_CHECK(spec.eps >= 0.0f, "affine spec: eps ", spec.eps, " is negative");
  if (spec.mapping == MappingType::Symmetric) {
    LB_CHECK(spec.preserve_zero, "affine spec: symmetric mapping requires preserve_zero");
    LB_CHECK(spec.domain != ZeroPointDomain::Float,
             "affine spec: symmetric mapping takes the Int or None zero-point domain, not Float");
  }
}

AffineBlockParams choose_qparams_affine_block(float min_val, float max_val, const AffineSpec& spec) {
  const float min_neg = spec.preserve_zero ? std::min(min_val, 0.0f) : min_val;
  const float max_pos = spec.preserve_zero ? std::max(max_val, 0.0f) : max_val;
  const float qmin = float(spec.quant_min), qmax = float(spec.quant_max);
  AffineBlockParams p;
  float scale;
  if (spec.mapping == MappingType::Symmetric) {
    scale = std::max(-min_neg, max_pos) / ((qmax - qmin) / 2.0f);
    // torchao: int((quant_max + quant_min + 1) / 2), a truncation toward zero
    if (spec.domain == ZeroPointDomain::Int) p.zero_point = std::trunc((qmax + qmin + 1.0f) / 2.0f);
    scale = std::max(scale, spec.eps);
  } else {
    scale = (max_pos - min_neg) / (qmax - qmin);
    scale = std::max(scale, spec.eps);
    if (spec.domain == ZeroPointDomain::Int) {
      // computed with the fp32 scale before it is rounded to scale_dtype (torchao's order)
      const float zp = qmin - std::nearbyint(min_neg / scale);
      p.zero_point = std::clamp(zp, qmin, qmax);
    } else if (spec.domain == ZeroPointDomain::Float) {
      p.zero_point = round_to(spec.zero_dtype, min_neg);
    }
  }
  p.scale = round_to(spec.scale_dtype, scale);
  return p;
}

int32_t quantize_affine_value(float x, const AffineBlockParams& p, const AffineSpec& spec) {
  const float qmin = float(spec.quant_min), qmax = float(spec.quant_max);
  float q;
  switch (spec.domain) {
    case ZeroPointDomain::Int: q = std::nearbyint(x * (1.0f / p.scale)) + p.zero_point; break;
    case ZeroPointDomain::None: q = std::nearbyint(x * (1.0f / p.scale)); break;
    case ZeroPointDomain::Float:
    default: q = std::nearbyint((x - p.zero_point) / p.scale) + qmin; break;
  }
  if (std::isnan(q)) q = spec.domain == ZeroPointDomain::Float ? qmin : std::clamp(p.zero_point, qmin, qmax);
  return int32_t(std::clamp(q, qmin, qmax));
}

float dequantize_affine_value(int32_t q, const AffineBlockParams& p, const AffineSpec& spec) {
  switch (spec.domain) {
    case ZeroPointDomain::Int: return float(q - int32_t(p.zero_point)) * p.scale;
    case ZeroPointDomain::None: return float(q) * p.scale;
    case ZeroPointDomain::Float:
    default: return std::fma(float(q - spec.quant_min), p.scale, p.zero_point);
  }
}

namespace {
struct Tiling {
  int64_t br, bc, nbr, nbc;
};
Tiling tiling(int64_t rows, int64_t cols, const AffineSpec& spec) {
  Tiling t;
  t.br = spec.block_rows == 0 ? rows : std::min(spec.block_rows, rows);
  t.bc = spec.block_cols == 0 ? cols : std::min(spec.block_cols, cols);
  t.nbr = (rows + t.br - 1) / t.br;
  t.nbc = (cols + t.bc - 1) / t.bc;
  return t;
}
void check_shape(const char* what, int64_t rows, int64_t cols) {
  LB_CHECK(rows > 0 && cols > 0, what, ": empty shape [", rows, ", ", cols, "]");
}
void check_params(const char* what, const AffineQParams& qp, const Tiling& t) {
  LB_CHECK(qp.nblock_rows == t.nbr && qp.nblock_cols == t.nbc && qp.blocks.size() == size_t(t.nbr * t.nbc), what,
           ": parameters for ", qp.nblock_rows, "x", qp.nblock_cols, " blocks, the shape needs ", t.nbr, "x",
           t.nbc);
}
}  // namespace

AffineQParams choose_qparams_affine(const float* x, int64_t rows, int64_t cols, const AffineSpec& spec) {
  validate_affine_spec(spec);
  check_shape("choose_qparams_affine", rows, cols);
  const Tiling t = tiling(rows, cols, spec);
  AffineQParams qp;
  qp.nblock_rows = t.nbr;
  qp.nblock_cols = t.nbc;
  qp.blocks.resize(size_t(t.nbr * t.nbc));
  for (int64_t bi = 0; bi < t.nbr; ++bi) {
    for (int64_t bj = 0; bj < t.nbc; ++bj) {
      float lo = INFINITY, hi = -INFINITY;
      for (int64_t r = bi * t.br; r < std::min(rows, (bi + 1) * t.br); ++r) {
        for (int64_t c = bj * t.bc; c < std::min(cols, (bj + 1) * t.bc); ++c) {
          const float v = x[r * cols + c];
          LB_CHECK(std::isfinite(v), "choose_qparams_affine: non-finite input at [", r, ", ", c, "]");
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
      }
      qp.blocks[size_t(bi * t.nbc + bj)] = choose_qparams_affine_block(lo, hi, spec);
    }
  }
  return qp;
}

std::vector<int32_t> quantize_affine(const float* x, int64_t rows, int64_t cols, const AffineQParams& qp,
                                     const AffineSpec& spec) {
  validate_affine_spec(spec);
  check_shape("quantize_affine", rows, cols);
  const Tiling t = tiling(rows, cols, spec);
  check_params("quantize_affine", qp, t);
  std::vector<int32_t> q(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float v = x[r * cols + c];
      LB_CHECK(std::isfinite(v), "quantize_affine: non-finite input at [", r, ", ", c, "]");
      q[size_t(r * cols + c)] = quantize_affine_value(v, qp.at(r / t.br, c / t.bc), spec);
    }
  }
  return q;
}

std::vector<float> dequantize_affine(const int32_t* q, int64_t rows, int64_t cols, const AffineQParams& qp,
                                     const AffineSpec& spec) {
  validate_affine_spec(spec);
  check_shape("dequantize_affine", rows, cols);
  const Tiling t = tiling(rows, cols, spec);
  check_params("dequantize_affine", qp, t);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int32_t v = q[r * cols + c];
      LB_CHECK(v >= spec.quant_min && v <= spec.quant_max, "dequantize_affine: code ", v, " at [", r, ", ", c,
               "] outside [", spec.quant_min, ", ", spec.quant_max, "]");
      out[size_t(r * cols + c)] = dequantize_affine_value(v, qp.at(r / t.br, c / t.bc), spec);
    }
  }
  return out;
}

}  // namespace lowbit

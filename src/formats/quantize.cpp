// quantize() / dequantize(): option checks, buffer set-up and dispatch to the per-family quantizers.
#include <algorithm>
#include <cmath>

#include "formats/codec.h"
#include "formats/quant_internal.h"
#include "formats/qtensor.h"
#include "util/error.h"

namespace lowbit {

namespace {
std::string who(const std::string& name, Format fmt) {
  return name.empty() ? std::string("quantize ") + format_name(fmt)
                      : std::string("quantize ") + format_name(fmt) + " '" + name + "'";
}
}  // namespace

QTensor quantize(const float* x, int64_t rows, int64_t cols, Format fmt, const QuantOptions& opt, std::string name) {
  const FormatInfo& fi = format_info(fmt);
  const std::string w = who(name, fmt);
  LB_CHECK(rows > 0 && cols > 0, w, ": empty shape [", rows, ", ", cols, "]");
  LB_CHECK(x != nullptr, w, ": no input values");
  QTensor t;
  t.name = std::move(name);
  t.fmt = fmt;
  t.rows = rows;
  t.cols = cols;
  t.rule = opt.rule;
  if (fi.scheme == ScaleScheme::GroupAffine) {
    LB_CHECK(opt.group >= 0 && opt.group % 32 == 0, w, ": group size ", opt.group,
             " is not a positive multiple of 32");
    t.group = effective_group(fmt, opt.group);
  } else {
    // fixed-block and block-less formats ignore opt.group (docs/formats.md): one option set serves a
    // whole model whose formats differ
    t.group = fi.block;
  }
  if (fi.method == Method::Hqq) {
    LB_CHECK(opt.hqq_iters >= 0 && opt.hqq_iters <= 10000, w, ": hqq_iters ", opt.hqq_iters, " out of [0, 10000]");
    LB_CHECK(opt.hqq_p > 0.0f && opt.hqq_p <= 1.0f, w, ": hqq lp-norm p ", opt.hqq_p, " out of (0, 1]");
    LB_CHECK(opt.hqq_beta > 0.0f && std::isfinite(opt.hqq_beta), w, ": hqq beta ", opt.hqq_beta, " must be > 0");
    LB_CHECK(opt.hqq_kappa > 0.0f && std::isfinite(opt.hqq_kappa), w, ": hqq kappa ", opt.hqq_kappa,
             " must be > 0");
  }

  t.codes = Buffer::zeros(row_code_bytes(fmt, cols) * size_t(rows));
  const size_t ns = size_t(scales_per_row(fmt, cols, t.group)) * size_t(rows);
  switch (fi.scheme) {
    case ScaleScheme::None:
    case ScaleScheme::TensorF32: break;
    case ScaleScheme::RowF32: t.scales = Buffer::zeros(4 * ns); break;
    case ScaleScheme::GroupAffine:
      t.scales = Buffer::zeros(2 * ns);
      t.offsets = Buffer::zeros(2 * ns);
      break;
    case ScaleScheme::BlockE8M0:
    case ScaleScheme::BlockE4M3F32: t.scales = Buffer::zeros(ns); break;
  }

  switch (fi.method) {
    case Method::None: detail::quantize_plain(x, t); break;
    case Method::AbsMax: detail::quantize_row_scaled(x, t); break;
    case Method::MinMax:
    case Method::Hqq: detail::quantize_group_affine(x, t, opt); break;
    case Method::AbsMean: detail::quantize_ternary(x, t); break;
    case Method::Mx: detail::quantize_mx(x, t, opt); break;
    case Method::NvFp4: detail::quantize_nvfp4(x, t, opt); break;
  }
  t.validate();
  return t;
}

std::vector<QTensor> quantize_per_token(const float* x, int64_t M, int64_t K, Format fmt, const QuantOptions& opt) {
  LB_CHECK(M >= 0, "quantize_per_token: negative token count ", M);
  std::vector<QTensor> out;
  out.reserve(size_t(M));
  for (int64_t m = 0; m < M; ++m) out.push_back(quantize(x + m * K, 1, K, fmt, opt));
  return out;
}

void dequantize_row(const QTensor& t, int64_t row, float* out) {
  LB_CHECK(row >= 0 && row < t.rows, "dequantize_row: row ", row, " out of [0, ", t.rows, ") of tensor '", t.name,
           "'");
  decode_row_range(t, row, 0, t.cols, out);
}

void dequantize(const QTensor& t, float* out) {
  t.validate();
#pragma omp parallel for schedule(static) if (t.rows * t.cols > (1 << 16))
  for (int64_t r = 0; r < t.rows; ++r) decode_row_range(t, r, 0, t.cols, out + r * t.cols);
}

std::vector<float> dequantize(const QTensor& t) {
  t.validate();
  std::vector<float> out(static_cast<size_t>(t.rows * t.cols));
  dequantize(t, out.data());
  return out;
}

}  // namespace lowbit

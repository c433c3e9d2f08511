// qlinear(): routes an (activation format, weight format) pair to a kernel; qlinear_ref(): the spec.
#include "backend/cpu/qlinear.h"

#include <vector>

#include "backend/cpu/qlinear_kernels.h"
#include "formats/codec.h"
#include "util/error.h"

namespace lowbit {

namespace cpu {

QKernel select_qkernel(std::optional<Format> act, Format weight) {
  const FormatInfo& w = format_info(weight);
  if (!act) return w.scheme == ScaleScheme::None ? QKernel::Dense : QKernel::WeightOnly;
  const FormatInfo& a = format_info(*act);
  if (a.scheme == ScaleScheme::RowF32 && (w.scheme == ScaleScheme::RowF32 || w.scheme == ScaleScheme::TensorF32))
    return (a.elem == ElemType::I8 && w.elem == ElemType::I8) ? QKernel::Int8xInt8 : QKernel::RowScaled;
  const bool a_block = a.scheme == ScaleScheme::BlockE8M0 || a.scheme == ScaleScheme::BlockE4M3F32;
  const bool w_block = w.scheme == ScaleScheme::BlockE8M0 || w.scheme == ScaleScheme::BlockE4M3F32;
  if (a_block && w_block && a.block == w.block) return QKernel::BlockScaled;
  if (a.elem == ElemType::I8 && a.scheme == ScaleScheme::RowF32 && w.scheme == ScaleScheme::GroupAffine)
    return QKernel::Int8xGroup;
  return QKernel::DequantAct;
}

const char* qkernel_name(QKernel k) {
  switch (k) {
    case QKernel::Dense: return "dense";
    case QKernel::WeightOnly: return "weight-only";
    case QKernel::Int8xInt8: return "int8xint8";
    case QKernel::RowScaled: return "row-scaled";
    case QKernel::BlockScaled: return "block-scaled";
    case QKernel::Int8xGroup: return "int8xgroup";
    case QKernel::DequantAct: return "dequant-act";
  }
  return "?";
}

}  // namespace cpu

namespace {

void check_args(const char* fn, const float* x, int64_t M, const QTensor& W, std::optional<Format> act,
                const float* y) {
  W.validate();
  LB_CHECK(W.info().weight_ok, fn, ": ", W.info().name, " is not a weight format (tensor '", W.name, "')");
  LB_CHECK(M >= 0, fn, ": negative row count ", M, " (tensor '", W.name, "')");
  LB_CHECK(M == 0 || (x != nullptr && y != nullptr), fn, ": null input or output (tensor '", W.name, "')");
  if (act)
    LB_CHECK(format_info(*act).act_ok, fn, ": ", format_name(*act),
             " is not an activation format; activation formats: ", format_names(false, true));
}

// The dequantized per-token activations (x' = dequantize(quantize(x_m))), [M, K].
std::vector<float> dequantized_acts(const std::vector<QTensor>& acts, int64_t K) {
  std::vector<float> xd(acts.size() * size_t(K));
  for (size_t m = 0; m < acts.size(); ++m) decode_row_range(acts[m], 0, 0, K, xd.data() + m * size_t(K));
  return xd;
}

}  // namespace

void qlinear(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y) {
  check_args("qlinear", x, M, W, act, y);
  if (M == 0) return;
  const cpu::QKernel k = cpu::select_qkernel(act, W.fmt);
  if (k == cpu::QKernel::Dense) return dense_linear(x, M, W, y);
  if (k == cpu::QKernel::WeightOnly) return cpu::linear_weight_only(x, M, W, y);
  const std::vector<QTensor> acts = quantize_per_token(x, M, W.cols, *act);
  switch (k) {
    case cpu::QKernel::Int8xInt8: return cpu::linear_int8_int8(acts, W, y);
    case cpu::QKernel::RowScaled: return cpu::linear_row_scaled(acts, W, y);
    case cpu::QKernel::BlockScaled: return cpu::linear_block_scaled(acts, W, y);
    case cpu::QKernel::Int8xGroup: return cpu::linear_int8_group(acts, W, y);
    default: break;
  }
  const std::vector<float> xd = dequantized_acts(acts, W.cols);
  if (W.info().scheme == ScaleScheme::None) return dense_linear(xd.data(), M, W, y);
  cpu::linear_weight_only(xd.data(), M, W, y);
}

void qlinear_ref(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y) {
  check_args("qlinear_ref", x, M, W, act, y);
  if (M == 0) return;
  const int64_t N = W.rows, K = W.cols;
  const std::vector<float> w = dequantize(W);
  std::vector<float> xd;
  const float* xs = x;
  if (act) {
    xd = dequantized_acts(quantize_per_token(x, M, K, *act), K);
    xs = xd.data();
  }
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.0f;  // fp32 accumulation in column order
      for (int64_t k = 0; k < K; ++k) acc += xs[m * K + k] * w[size_t(n * K + k)];
      y[m * N + n] = acc;
    }
  }
}

}  // namespace lowbit

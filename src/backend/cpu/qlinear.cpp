// qlinear(): routes an (activation format, weight format) pair to a kernel; qlinear_ref(): the spec.
#include "backend/cpu/qlinear.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/qlinear_kernels.h"
#include "formats/codec.h"
#include "util/error.h"

namespace lowbit {

namespace cpu {

QKernel select_qkernel(std::optional<Format> act, Format weight) {
  const FormatInfo& w = format_info(weight);
  if (!act) return w.scheme == ScaleScheme::None ? QKernel::Dense : QKernel::WeightOnly;
  const FormatInfo& a = format_info(is_static_act(*act) ? static_act_twin(*act) : *act);
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
                const float* y, float act_amax) {
  W.validate();
  LB_CHECK(W.info().weight_ok, fn, ": ", W.info().name, " is not a weight format (tensor '", W.name, "')");
  LB_CHECK(M >= 0, fn, ": negative row count ", M, " (tensor '", W.name, "')");
  LB_CHECK(M == 0 || (x != nullptr && y != nullptr), fn, ": null input or output (tensor '", W.name, "')");
  if (act)
    LB_CHECK(format_info(*act).act_ok, fn, ": ", format_name(*act),
             " is not an activation format; activation formats: ", format_names(false, true));
  if (act && is_static_act(*act))
    LB_CHECK(act_amax > 0.0f && std::isfinite(act_amax), fn, ": ", format_name(*act), " needs the calibrated range of the input of '",
             W.name, "' (got ", act_amax, "); record one with `lowbit calibrate`");
}

// Per-token activations. A static format's tokens share the calibrated scale; they are handed to the
// kernels as their per-row twin (int8 / fp8-e4m3 with that scale as every row's scale), which decodes to
// the same values, so the A8W8 kernels serve static activations too.
std::vector<QTensor> quantize_acts(const float* x, int64_t M, int64_t K, Format act, float act_amax,
                                   Format* kernel_act) {
  *kernel_act = act;
  if (!is_static_act(act)) return quantize_per_token(x, M, K, act);
  QuantOptions o;
  o.static_amax = act_amax;
  std::vector<QTensor> toks = quantize_per_token(x, M, K, act, o);
  *kernel_act = static_act_twin(act);
  for (QTensor& t : toks) {
    const float s = t.tensor_scale;
    std::vector<uint8_t> row_scale(4);
    std::memcpy(row_scale.data(), &s, 4);
    t.fmt = *kernel_act;
    t.scales = Buffer::own(std::move(row_scale));
    t.tensor_scale = 1.0f;
  }
  return toks;
}

// The dequantized per-token activations (x' = dequantize(quantize(x_m))), [M, K].
std::vector<float> dequantized_acts(const std::vector<QTensor>& acts, int64_t K) {
  std::vector<float> xd(acts.size() * size_t(K));
  for (size_t m = 0; m < acts.size(); ++m) decode_row_range(acts[m], 0, 0, K, xd.data() + m * size_t(K));
  return xd;
}

}  // namespace

void qlinear(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y, float act_amax) {
  check_args("qlinear", x, M, W, act, y, act_amax);
  if (M == 0) return;
  if (!act) {
    if (W.info().scheme == ScaleScheme::None) return dense_linear(x, M, W, y);
    return cpu::linear_weight_only(x, M, W, y);
  }
  Format kernel_act = *act;
  const std::vector<QTensor> acts = quantize_acts(x, M, W.cols, *act, act_amax, &kernel_act);
  const cpu::QKernel k = cpu::select_qkernel(kernel_act, W.fmt);
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

void qlinear_ref(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y, float act_amax) {
  check_args("qlinear_ref", x, M, W, act, y, act_amax);
  if (M == 0) return;
  const int64_t N = W.rows, K = W.cols;
  const std::vector<float> w = dequantize(W);
  std::vector<float> xd;
  const float* xs = x;
  if (act) {
    QuantOptions o;
    o.static_amax = is_static_act(*act) ? act_amax : 0.0f;
    xd = dequantized_acts(quantize_per_token(x, M, K, *act, o), K);
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

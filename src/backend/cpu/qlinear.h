// CPU linear layers: y[M, N] = x[M, K] · W[N, K]^T for a weight in any registry format, optionally with
// per-token quantized activations. Computed from the packed codes (no dequantized copy of W).
#pragma once
#include <cstdint>
#include <optional>

#include "formats/qtensor.h"

namespace lowbit {

// Fast path (threads, SIMD). `act` quantizes each row of x to that format first (A8W8, MXFP4xMXFP4, ...);
// nullopt keeps fp32 activations (the survey's A16 rows). Throws Error for unsupported pairs.
// Static activation formats (int8-static, fp8-static) need `act_amax`, the calibrated absmax of this
// layer's input: every token is quantized with the one scale it implies (values beyond it saturate).
void qlinear(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y, float act_amax = 0.0f);

// The spec: dequantize W (and the quantized x) to fp32 and multiply with fp32 accumulation. Slow.
void qlinear_ref(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y,
                 float act_amax = 0.0f);

// Plain formats only (f32, bf16, fp16 weights; fp32 activations): the dense kernels used by qlinear.
void dense_linear(const float* x, int64_t M, const QTensor& W, float* y);

}  // namespace lowbit

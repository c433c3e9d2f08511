// CPU linear layers: y[M, N] = x[M, K] · W[N, K]^T for a weight in any registry format, optionally with
// per-token quantized activations. Computed from the packed codes (no dequantized copy of W).
#pragma once
#include <cstdint>
#include <optional>

#include "formats/qtensor.h"

namespace lowbit {

// Fast path (threads, SIMD). `act` quantizes each row of x to that format first (A8W8, MXFP4xMXFP4, ...);
// nullopt keeps fp32 activations (the survey's A16 rows). Throws Error for unsupported pairs.
void qlinear(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y);

// The spec: dequantize W (and the quantized x) to fp32 and multiply with fp32 accumulation. Slow.
void qlinear_ref(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y);

// Plain formats only (f32, bf16, fp16 weights; fp32 activations): the dense kernels used by qlinear.
void dense_linear(const float* x, int64_t M, const QTensor& W, float* y);

}  // namespace lowbit

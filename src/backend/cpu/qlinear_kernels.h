// The CPU quantized-linear kernels behind qlinear() and how a (activation, weight) pair is routed to them.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "formats/qtensor.h"

namespace lowbit::cpu {

enum class QKernel : uint8_t {
  Dense,          // plain weights, fp32 activations: dense_linear
  WeightOnly,     // fp32 activations x any quantized weight: per-chunk decode + fp32 dots
  Int8xInt8,      // A8W8 int8: int32 dots of the codes, then * sx * sw
  RowScaled,      // per-token-scaled activations (int8, fp8) x per-row/per-tensor-scaled weights:
                  //   fp32 dots of element values, then * sx * sw
  BlockScaled,    // MX / NVFP4 activations x block weights of the same block size: per-block dots * scales
  Int8xGroup,     // A8W4 (and W2/W1): int8 activations x unsigned group-affine codes, int32 group dots
  DequantAct,     // any other pair: the quantized activations are dequantized, then the weight path runs
};

// The kernel qlinear() uses for this pair (the act format must be act_ok, the weight's weight_ok).
QKernel select_qkernel(std::optional<Format> act, Format weight);
const char* qkernel_name(QKernel k);

void linear_weight_only(const float* x, int64_t M, const QTensor& W, float* y);
void linear_int8_int8(const std::vector<QTensor>& acts, const QTensor& W, float* y);
void linear_row_scaled(const std::vector<QTensor>& acts, const QTensor& W, float* y);
void linear_block_scaled(const std::vector<QTensor>& acts, const QTensor& W, float* y);
void linear_int8_group(const std::vector<QTensor>& acts, const QTensor& W, float* y);

}  // namespace lowbit::cpu

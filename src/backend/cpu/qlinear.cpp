// Placeholder dispatch until the quantized kernels land: plain formats only.
#include "backend/cpu/qlinear.h"

#include "util/error.h"

namespace lowbit {

void qlinear(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y) {
  LB_CHECK(!act, "activation quantization is not implemented yet");
  dense_linear(x, M, W, y);
}

void qlinear_ref(const float* x, int64_t M, const QTensor& W, std::optional<Format> act, float* y) {
  qlinear(x, M, W, act, y);
}

}  // namespace lowbit

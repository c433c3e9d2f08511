// GEMV kernels for f32 / bf16 / fp16 weights (scalar fp32 kernel) (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_stream.cuh"

namespace lowbit::cuda {

LB_INSTANTIATE_GEMV(PlainF32)
LB_INSTANTIATE_GEMV(PlainBF16)
LB_INSTANTIATE_GEMV(PlainF16)

}  // namespace lowbit::cuda

// GEMV kernels for fp8 E4M3 / E5M2 with per-row or per-tensor scales, MXFP8 (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_stream.cuh"

namespace lowbit::cuda {

LB_INSTANTIATE_GEMV(E4M3)
LB_INSTANTIATE_GEMV(E5M2)
LB_INSTANTIATE_GEMV(MxE4M3)
LB_INSTANTIATE_GEMV(MxE5M2)

}  // namespace lowbit::cuda

// GEMV kernels for fp6 E3M2 / E2M3 with per-row scales, MXFP6 (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_stream.cuh"

namespace lowbit::cuda {

LB_INSTANTIATE_GEMV(E3M2)
LB_INSTANTIATE_GEMV(E2M3)
LB_INSTANTIATE_GEMV(MxE3M2)
LB_INSTANTIATE_GEMV(MxE2M3)

}  // namespace lowbit::cuda

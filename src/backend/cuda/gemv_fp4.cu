// GEMV kernels for fp4 E2M1: MXFP4 and NVFP4 (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_stream.cuh"

namespace lowbit::cuda {

LB_INSTANTIATE_GEMV(MxE2M1)
LB_INSTANTIATE_GEMV(NvE2M1)

}  // namespace lowbit::cuda

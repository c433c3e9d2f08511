// GEMV kernels for integer codes: int8, MXINT8, group-affine int4 / int2 / int1 (RTN and HQQ) (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_stream.cuh"

namespace lowbit::cuda {

LB_INSTANTIATE_GEMV(I8)
LB_INSTANTIATE_GEMV(MxI8)
LB_INSTANTIATE_GEMV(U4)
LB_INSTANTIATE_GEMV(U2)
LB_INSTANTIATE_GEMV(U1)

}  // namespace lowbit::cuda

// GEMV kernels for ternary: 2-bit codes and 5 trits per byte (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_stream.cuh"

namespace lowbit::cuda {

LB_INSTANTIATE_GEMV(T2)
LB_INSTANTIATE_GEMV(T5)

}  // namespace lowbit::cuda

// GEMV kernels for ternary: 2-bit codes and 5 trits per byte (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_kernels.cuh"

namespace lowbit::cuda {

template void launch_gemv_codec<GpuCodec::T2>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::T5>(const GemvArgs&, unsigned, int, cudaStream_t);

}  // namespace lowbit::cuda

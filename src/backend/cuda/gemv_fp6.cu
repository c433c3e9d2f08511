// GEMV kernels for fp6 E3M2 / E2M3 with per-row scales, MXFP6 (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_kernels.cuh"

namespace lowbit::cuda {

template void launch_gemv_codec<GpuCodec::E3M2>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::E2M3>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::MxE3M2>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::MxE2M3>(const GemvArgs&, unsigned, int, cudaStream_t);

}  // namespace lowbit::cuda

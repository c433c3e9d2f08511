// GEMV kernels for fp8 E4M3 / E5M2 with per-row or per-tensor scales, MXFP8 (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_kernels.cuh"

namespace lowbit::cuda {

template void launch_gemv_codec<GpuCodec::E4M3>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::E5M2>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::MxE4M3>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::MxE5M2>(const GemvArgs&, unsigned, int, cudaStream_t);

}  // namespace lowbit::cuda

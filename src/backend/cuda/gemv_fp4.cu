// GEMV kernels for fp4 E2M1: MXFP4 and NVFP4 (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_kernels.cuh"

namespace lowbit::cuda {

template void launch_gemv_codec<GpuCodec::MxE2M1>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::NvE2M1>(const GemvArgs&, unsigned, int, cudaStream_t);

}  // namespace lowbit::cuda

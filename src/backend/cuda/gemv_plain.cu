// GEMV kernels for f32 / bf16 / fp16 weights (scalar fp32 kernel) (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_kernels.cuh"

namespace lowbit::cuda {

template void launch_gemv_codec<GpuCodec::PlainF32>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::PlainBF16>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::PlainF16>(const GemvArgs&, unsigned, int, cudaStream_t);

}  // namespace lowbit::cuda

// GEMV kernels for integer codes: int8, MXINT8, group-affine int4 / int2 / int1 (RTN and HQQ) (one instantiation per codec; split by family for parallel builds).
#include "backend/cuda/gemv_kernels.cuh"

namespace lowbit::cuda {

template void launch_gemv_codec<GpuCodec::I8>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::MxI8>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::U4>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::U2>(const GemvArgs&, unsigned, int, cudaStream_t);
template void launch_gemv_codec<GpuCodec::U1>(const GemvArgs&, unsigned, int, cudaStream_t);

}  // namespace lowbit::cuda

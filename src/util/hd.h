// LB_HD marks functions usable on the host and in CUDA kernels (format codecs are shared by both).
#pragma once
#if defined(__CUDACC__)
#define LB_HD __host__ __device__ __forceinline__
#else
#define LB_HD inline
#endif

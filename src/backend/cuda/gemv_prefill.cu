// Prefill (M > 8 tokens): the weights are dequantized to bf16 (weights.cu) and multiplied by cuBLAS with
// fp32 accumulation. Dedicated quantized GEMMs are later work.
#include "backend/cuda/check.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/linear.cuh"

namespace lowbit::cuda {

void gemm_bf16(cublasHandle_t h, const __nv_bfloat16* X, const __nv_bfloat16* W, float* C, int M, int N, int K,
               cudaStream_t s) {
  LB_CHECK(h != nullptr, "gemm_bf16: no cuBLAS handle");
  LB_CHECK(M > 0 && N > 0 && K > 0, "gemm_bf16: empty shape M=", M, " N=", N, " K=", K);
  LB_CHECK(X && W && C, "gemm_bf16: null pointer");
  LB_CUBLAS_CHECK(cublasSetStream(h, s));
  const float alpha = 1.0f, beta = 0.0f;
  // Column-major view: C^T [N, M] = W [N, K] (row-major = K x N col-major, transposed) * X^T [K, M]
  LB_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16BF, K, X, CUDA_R_16BF, K,
                               &beta, C, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void gemm_bf16_nt(cublasHandle_t h, const __nv_bfloat16* X, const __nv_bfloat16* W, float* C, int n, int R, int K,
                  cudaStream_t s) {
  gemm_bf16(h, X, W, C, n, R, K, s);
}

}  // namespace lowbit::cuda

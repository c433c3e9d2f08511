// Prefill (M > 8 tokens): the weights are dequantized to bf16 (weights.cu) and multiplied by cuBLAS with
// fp32 accumulation. Dedicated quantized GEMMs are later work. Short prompts on plain bf16 / fp16 weights:
// cuBLAS on the stored weight with x split into three parts of the weight's type (gemm_parts, gemv.cuh).
#include "backend/cuda/check.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/linear.cuh"
#include "backend/cuda/gemv_kernels.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/warp.cuh"

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

namespace {

constexpr int kHiLoThreads = 256;
constexpr int kHiLoParts = 3;  // 3 x 8 significant bits of bf16 (3 x 11 of fp16) hold every fp32 value's 24

// One block per token m: x' = x * rinv * w (rinv the RMSNorm factor where norm_w is given), scaled by 2^e (e
// such that max |x'| 2^e lies in [2^14, 2^15): exact, and within fp16's range), split into parts
// p0 = T(v), p1 = T(v - p0), p2 = T(v - p0 - p1) of v = x' 2^e (each difference exact in fp32): rows m, M + m
// and 2M + m of xs [3M, K]. inv_scale[m] = 2^-e.
template <typename T>
__global__ void __launch_bounds__(kHiLoThreads) split_parts_kernel(const float* x, int M, int K, const float* norm_w,
                                                                  float eps, T* xs, float* inv_scale) {
  pdl_wait();
  pdl_trigger();
  __shared__ float red_ss[kHiLoThreads / 32], red_mx[kHiLoThreads / 32];
  const int m = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const float* xm = x + int64_t(m) * K;
  float ss = 0.0f, mx = 0.0f;  // sum of squares of x, max |x w|
  for (int k = tid; k < K; k += kHiLoThreads) {
    const float v = xm[k];
    ss = fmaf(v, v, ss);
    mx = fmaxf(mx, fabsf(norm_w ? v * norm_w[k] : v));
  }
  ss = warp_sum(ss);
  mx = warp_max(mx);
  if (lane == 0) {
    red_ss[warp] = ss;
    red_mx[warp] = mx;
  }
  __syncthreads();
  ss = 0.0f;
  mx = 0.0f;
  for (int i = 0; i < kHiLoThreads / 32; ++i) {  // every thread, in the same order: the same sums
    ss += red_ss[i];
    mx = fmaxf(mx, red_mx[i]);
  }
  const float rinv = norm_w ? 1.0f / sqrtf(ss / float(K) + eps) : 1.0f;
  const float peak = mx * rinv;
  // 2^e with peak 2^e in [2^14, 2^15); e = 0 for an all-zero (or non-finite) row
  const int e = peak > 0.0f && isfinite(peak) ? 14 - ilogbf(peak) : 0;
  const float scale = ldexpf(1.0f, e);
  for (int k = tid; k < K; k += kHiLoThreads) {
    float v = (norm_w ? xm[k] * rinv * norm_w[k] : xm[k]) * scale;
#pragma unroll
    for (int p = 0; p < kHiLoParts; ++p) {
      const T h = T(v);
      xs[(int64_t(p) * M + m) * K + k] = h;
      v -= float(h);  // exact: h is v rounded to fewer bits
    }
  }
  if (tid == 0) inv_scale[m] = ldexpf(1.0f, -e);
}

// out[m, j] (=, += or SwiGLU of the pair) from cs [3M, N] (the GEMM of each part's rows): the parts' sum
// times 2^-e_m per physical row (gate/up pairs: rows interleaved by 8, physical_row()).
__global__ void parts_epilogue_kernel(const float* cs, const float* inv_scale, GpuWeightView w, int M, int64_t N,
                                      GemvOut kind, float* out, int64_t ld) {
  pdl_wait();
  pdl_trigger();
  const int64_t n_out = w.glu ? w.ff : w.rows;
  const int64_t total = int64_t(M) * n_out;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int m = int(i / n_out);
    const int64_t j = i % n_out;
    auto value = [&](int64_t logical) {
      const int64_t r = physical_row(w, logical);
      float v = 0.0f;
#pragma unroll
      for (int p = kHiLoParts - 1; p >= 0; --p) v += cs[(int64_t(p) * M + m) * N + r];  // smallest first
      return v * inv_scale[m];
    };
    float* o = out + int64_t(m) * ld + j;
    if (kind == GemvOut::SwiGluF32) *o = silu(value(j)) * value(w.ff + j);
    else if (kind == GemvOut::AddF32) *o += value(j);
    else *o = value(j);
  }
}

}  // namespace

size_t gemm_parts_scratch_x(const GpuWeight& w, int M) { return size_t(kHiLoParts) * M * size_t(w.view.cols) * 2; }
size_t gemm_parts_scratch_c(const GpuWeight& w, int M) {
  return (size_t(kHiLoParts) * M * size_t(w.view.rows) + M) * sizeof(float);
}

bool gemm_parts(cublasHandle_t h, const GpuWeight& w, const float* x, int M, const GemvEpilogue& ep, void* xs,
                float* cs, cudaStream_t s) {
  const GpuCodec c = w.view.codec;
  if ((c != GpuCodec::PlainBF16 && c != GpuCodec::PlainF16) || M < 2 || M > kGemvMaxTokens) return false;
  LB_CHECK(ep.kind == GemvOut::StoreF32 || ep.kind == GemvOut::AddF32 || ep.kind == GemvOut::SwiGluF32,
           "gemm_parts('", w.name, "'): unsupported epilogue ", int(ep.kind));
  LB_CHECK(x && ep.out && xs && cs && h, "gemm_parts('", w.name, "'): null pointer");
  const int K = int(w.view.cols);
  const int64_t N = w.view.rows, lda = w.view.row_stride / 2;
  float* inv_scale = cs + int64_t(kHiLoParts) * M * N;
  const bool bf = c == GpuCodec::PlainBF16;
  if (bf) {
    launch(split_parts_kernel<__nv_bfloat16>, M, kHiLoThreads, 0, s, x, M, K, ep.norm_weight, ep.norm_eps,
           static_cast<__nv_bfloat16*>(xs), inv_scale);
  } else {
    launch(split_parts_kernel<__half>, M, kHiLoThreads, 0, s, x, M, K, ep.norm_weight, ep.norm_eps,
           static_cast<__half*>(xs), inv_scale);
  }
  LB_CUDA_LAUNCH_CHECK();
  LB_CUBLAS_CHECK(cublasSetStream(h, s));
  const float alpha = 1.0f, beta = 0.0f;
  const cudaDataType t = bf ? CUDA_R_16BF : CUDA_R_16F;
  // column-major view: cs^T [N, 3M] = W [N, K] (row-major, row stride lda: K x N col-major, transposed) * xs^T
  LB_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(N), kHiLoParts * M, K, &alpha, w.view.codes, t,
                               int(lda), xs, t, K, &beta, cs, CUDA_R_32F, int(N), CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
  const int64_t n_out = w.view.glu ? w.view.ff : w.view.rows;
  const int64_t ld = ep.ld > 0 ? ep.ld : n_out;
  const unsigned grid = unsigned(std::min<int64_t>((int64_t(M) * n_out + 255) / 256, 4096));
  launch(parts_epilogue_kernel, grid, 256, 0, s, cs, inv_scale, w.view, M, N, ep.kind, static_cast<float*>(ep.out),
         ld);
  LB_CUDA_LAUNCH_CHECK();
  return true;
}

void gemm_bf16_nt(cublasHandle_t h, const __nv_bfloat16* X, const __nv_bfloat16* W, float* C, int n, int R, int K,
                  cudaStream_t s) {
  gemm_bf16(h, X, W, C, n, R, K, s);
}

}  // namespace lowbit::cuda

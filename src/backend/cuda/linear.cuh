// A linear layer's weights on the GPU, as the runner sees them: one or more canonical QTensors (rows
// concatenated, e.g. Q|K|V) or a gate/up pair whose SwiGLU is fused, repacked into the GPU layout of
// gemv.cuh, with the batch-1..8 GEMV and the bf16 dequantization used by prefill.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "backend/cuda/l2_prefetch.cuh"
#include "formats/qtensor.h"

namespace lowbit::cuda {

enum class LinearEpilogue {
  Store,   // y[M, N] = W x
  AddTo,   // y[M, N] += W x (residual)
  SwiGLU,  // gate/up pair: y[M, H] = silu(W_gate x) * (W_up x)
};

class DevLinear {
 public:
  virtual ~DevLinear() = default;
  // parts: tensors of one format and K whose rows are concatenated; swiglu_pair: {gate, up}.
  static std::unique_ptr<DevLinear> create(const std::vector<const QTensor*>& parts, bool swiglu_pair,
                                           cudaStream_t s);
  virtual int out_features() const = 0;  // N (H for a SwiGLU pair)
  virtual int rows() const = 0;          // stored rows (2H for a SwiGLU pair)
  virtual int in_features() const = 0;   // K
  virtual Format format() const = 0;
  virtual size_t bytes() const = 0;      // device bytes a GEMV reads (codes + scales + offsets)
  // y = epilogue(W · x') where x' = rmsnorm(x) * norm_w when norm_w is given, else x. x: [M, K] fp32, M <= 8.
  // variant < 0: the default (or autotuned) kernel variant.
  virtual void gemv(const float* x, int M, const float* norm_w, float eps, LinearEpilogue epi, float* y,
                    cudaStream_t s, int variant = -1) const = 0;
  // The number of GEMV kernel variants (for autotuning) and their names.
  virtual int num_variants() const = 0;
  virtual const char* variant_name(int v) const = 0;
  virtual void set_default_variant(int v) = 0;
  // Plain bf16 / fp16 weights, M = 2..8 tokens: the same y through cuBLAS (gemm_parts, gemv.cuh) with scratch
  // xs of xs_bytes and cs of cs_bytes. False, launching nothing, for other formats or scratch too small.
  virtual bool gemm_parts(cublasHandle_t h, const float* x, int M, const float* norm_w, float eps, LinearEpilogue epi,
                          float* y, void* xs, size_t xs_bytes, float* cs, size_t cs_bytes, cudaStream_t s) const = 0;
  // The bytes the one-token GEMV gemv(x, 1, norm_w, eps, epi, y) reads, in the order its blocks read them, in
  // pieces of at most `chunk` bytes (the L2 prefetcher's plan: gemv_stream_read_order). False where that GEMV
  // does not run the stream kernel.
  virtual bool read_order(const float* x, const float* norm_w, float eps, LinearEpilogue epi, float* y, uint32_t chunk,
                          std::vector<PrefetchChunk>& out) const = 0;
  // out[rows, K] bf16 = the dequantized weight, parts in order (gate rows then up rows for a pair).
  virtual void dequant_bf16(__nv_bfloat16* out, cudaStream_t s) const = 0;
};

// C[n, R] (fp32, row-major) = X[n, K] (bf16) · W[R, K]^T (bf16) with fp32 accumulation (cuBLAS).
void gemm_bf16_nt(cublasHandle_t h, const __nv_bfloat16* X, const __nv_bfloat16* W, float* C, int n, int R, int K,
                  cudaStream_t s);

}  // namespace lowbit::cuda

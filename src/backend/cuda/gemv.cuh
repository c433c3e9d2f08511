// Batch-1..8 GEMV over repacked weights of every format (y[M, N] = x[M, K] W[N, K]^T, fp32 accumulation),
// with fused epilogues and an optional fused RMSNorm prologue; and the bf16 GEMM used by prefill (M > 8).
//
// Quantized formats run on the tensor cores (mma.m16n8k16, fp16 operands, fp32 accumulation): each warp
// decodes its packet words into fp16 A fragments in registers (gemv_decode.h); x is split per token into
// fp16 hi + lo parts after a power-of-two scaling (x = 2^e (hi + lo), relative error <= 2^-22 per element),
// hi and lo being two columns of the B operand, so one MMA serves 4 tokens. Scales are applied in fp32 on
// the accumulators (per 32 columns for groups / MX blocks, per 16 for NVFP4, per row at the end).
// f32 / bf16 / fp16 weights use a scalar fp32 kernel. docs/cuda-kernels.md has the details.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <vector>

#include "backend/cuda/l2_prefetch.cuh"
#include "backend/cuda/weights.cuh"

namespace lowbit::cuda {

constexpr int kGemvMaxTokens = 8;

enum class GemvOut : uint8_t {
  StoreF32,    // out[m, n] = y (fp32)
  StoreBF16,   // out[m, n] = bf16(y)
  AddF32,      // out[m, n] += y (residual)
  SwiGluF32,   // gate/up pair (concat_glu): out[m, i] = silu(y_gate[i]) * y_up[i], i < ff
  SwiGluBF16,  // same, stored as bf16
};

struct GemvEpilogue {
  GemvOut kind = GemvOut::StoreF32;
  void* out = nullptr;                 // [M, ld]
  int64_t ld = 0;                      // elements between token rows of out (0: out_features)
  const float* norm_weight = nullptr;  // [K]: x -> x * rsqrt(mean(x^2) + eps) * norm_weight first
  float norm_eps = 1e-5f;
};

// Block shapes. `Split8`: one 16-row tile per block, K split over its 8 warps (small N); `Split4`: the same
// with 4 warps (128 threads: up to 4 blocks per SM, one wave where Split8 needs 1.5); `TilesRxS`: R tiles
// per block, K split over S warps, one block per R tiles; `PersistRxS`: the same, but at most two blocks
// per SM, each looping over tile groups with x staged once (when x fits in one K-tile) and the next
// group's first loads in flight during the epilogue; `Stream`: one block per SM over a run of whole tiles,
// its warps each an equal share of their packets, split tiles finished in shared memory (gemv_stream.cuh;
// 1..4 tokens with x staged whole; more tokens of the tensor-core formats in passes of the most tokens whose x
// fits, otherwise it runs Persist2x4); `Reference`: one warp per output row, element by element (slow; a cross-check).
enum class GemvVariant : int {
  Auto = -1,
  Split8 = 0,
  Split4 = 1,
  Tiles2x4 = 2,
  Tiles4x2 = 3,
  Tiles8x1 = 4,
  Persist2x4 = 5,
  Persist8x1 = 6,
  Stream = 7,
  Reference = 8,
};
constexpr int kNumGemvVariants = 9;      // Split8 .. Reference
constexpr int kNumFastGemvVariants = 8;  // Split8 .. Stream
const char* gemv_variant_name(GemvVariant v);
// The variant used for Auto: Stream (which itself falls back to Persist2x4 where it cannot run).
GemvVariant gemv_auto_variant(const GpuWeight& w, int M);

// Instrumentation for the kernel benchmark: while set (non-null, device memory of kTimelineStamps x 8 bytes
// per block), every launch of the stream kernels writes %globaltimer stamps per block: [0] entry, [1] after
// pdl_wait(), [2] after staging x, [3] end, [6] the block's multiprocessor + 1; in the one-pass staging also
// [4] when x has arrived and [5] after the block reduction; [7] the last of its warps past pdl_wait() and
// [8] the last warp whose x has arrived (atomicMax of every warp's stamp: the buffer starts zeroed). Null (the
// default) turns it off. The attention kernel writes [0]..[6] (ops.cu), and the runner's step timeline reads
// both.
constexpr int kTimelineStamps = 10;
void gemv_set_timeline(unsigned long long* stamps);
// While set, the stream kernels launched are told that the kernel before them runs few blocks (e.g. the decode
// attention), so that theirs start long before its end: their whole ring is issued before pdl_wait()
// (LOWBIT_GEMV_EARLY_NARROW). Read at launch, like the timeline (baked into captured graphs).
void gemv_set_after_narrow(bool on);

// The L2 prefetcher (l2_prefetch.cuh) and the stream kernels: while set (non-null, one device counter), block 0
// of every stream-kernel launch adds 1 to it at entry, which tells the prefetcher which launch of the step is
// running (read at launch, baked into captured graphs, like the timeline).
void gemv_set_progress(unsigned* counter);
// Multiprocessors the stream kernels leave to others (the prefetcher's): their grids are sized for
// sm_count() - n multiprocessors. 0 (default) uses them all. Set before the launches (and captures) it is for.
void gemv_set_reserved_sms(int n);
int gemv_reserved_sms();
// The bytes the one-token stream-kernel launch of (w, x, ep) reads, in the order its blocks read them: round r
// holds the r-th `chunk` bytes of every block's share of the codes (K slices: the block's slice of each of its
// tiles, in tile order), the same fraction of its scale bytes, and in round 0 the per-row values. Appends to
// out; false (nothing appended) where that launch would not run the stream kernel.
bool gemv_stream_read_order(const GpuWeight& w, const float* x, const GemvEpilogue& ep, uint32_t chunk,
                            std::vector<PrefetchChunk>& out);

// The K slices the stream kernel cuts this launch into (LOWBIT_GEMV_KSPLIT; 1: none): for tests and reports.
int gemv_stream_ksplit(const GpuWeight& w, const float* x, int M, const GemvEpilogue& ep);

// x: [M, K] fp32 on the device, 1 <= M <= 8. Checks the arguments (Error) and every launch.
void gemv(const GpuWeight& w, const float* x, int M, const GemvEpilogue& ep, cudaStream_t s,
          GemvVariant v = GemvVariant::Auto);

// C[M, N] (fp32, row-major) = X[M, K] (bf16, row-major) W[N, K]^T (bf16, row-major), fp32 accumulation.
// The handle is created once by the caller; its stream is set to s.
void gemm_bf16(cublasHandle_t h, const __nv_bfloat16* X, const __nv_bfloat16* W, float* C, int M, int N, int K,
               cudaStream_t s);

// Short prompts on plain bf16 / fp16 weights (2..8 tokens; the stream kernel of these formats takes one
// token and the tiled ones read the weight at a fraction of the bandwidth): out = epilogue(W x') by cuBLAS.
// Each token's x' (normalized when ep.norm_weight is given, scaled by a power of two 2^e_m so that its largest
// element is about 2^14) is split into three parts of the weight's type whose sum is x' 2^e exactly (bf16:
// 3 x 8 significant bits; fp16: 3 x 11, short only where the last part falls below fp16's smallest
// subnormal, 2^-38 of the largest element); the 3M rows go through one GEMM (the weight read once, fp32
// accumulation) and the epilogue adds the parts (smallest first) and scales back by 2^-e_m: the GEMV's
// arithmetic up to the order of the fp32 sums. Scratch: xs gemm_parts_scratch_x bytes, cs
// gemm_parts_scratch_c bytes. Returns false, launching nothing, for other formats or M outside 2..8.
// Epilogues: StoreF32, AddF32, SwiGluF32 (out [M, ld]).
bool gemm_parts(cublasHandle_t h, const GpuWeight& w, const float* x, int M, const GemvEpilogue& ep, void* xs,
                float* cs, cudaStream_t s);
size_t gemm_parts_scratch_x(const GpuWeight& w, int M);
size_t gemm_parts_scratch_c(const GpuWeight& w, int M);

}  // namespace lowbit::cuda

// The non-GEMV kernels of the CUDA forward pass: embedding gather, RoPE + KV-cache write, decode attention
// (flash-decoding: the context split across blocks, then combined), prefill attention, norms and
// elementwise epilogues of the prefill path, and on-device sampling. Each launcher takes a stream and
// checks its launch. Positions and token ids are read from device memory so that a captured CUDA graph
// replays a decode step without host involvement.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace lowbit::cuda {

// Decode attention: positions per tile (a lane per position); slots per block (4 warps each, one tile at a
// time), and at most this many blocks (runs of tiles) per kv head: a context of up to kAttnMaxSlots tiles is
// one block per kv head, longer ones runs of about kAttnMaxSlots tiles across blocks, merged at the end.
inline constexpr int kAttnTile = 32;
inline constexpr int kAttnMaxSlots = 4;
inline constexpr int kAttnMaxRuns = 32;
// Largest head dimension the decode attention takes (a multiple of 4 up to this).
inline constexpr int kAttnMaxHeadDim = 256;
// Query heads per kv head the decode attention takes (Llama 3: 4 for 8B, 8 for 70B, 16 for 405B).
inline constexpr int kAttnMaxGroup = 16;

// Table element type of the embedding gather.
enum class EmbedType { F32, BF16, F16 };

// x[i, :] = table[tokens[i], :] (fp32 out), for i < n; tokens are device ints.
void embed(const void* table, EmbedType type, int dim, const int* d_tokens, int n, float* x, cudaStream_t s);

// For each token i < n at position p = *d_pos + i: rotates q (n_heads) and k (n_kv heads) of qkv[i] by
// rope[p] and writes q to q_out[i], k and v to the layer's caches at row p.
//   qkv: [n, (n_heads + 2 n_kv) * hd]; rope: [max_seq, hd/2] (cos, sin); caches: [max_seq, n_kv * hd].
void rope_qkv_write(const float* qkv, int n, const int* d_pos, const float2* rope, int n_heads, int n_kv, int hd,
                    bool interleaved, float* q_out, float* k_cache, float* v_cache, cudaStream_t s);

// Partial results per query head that attention_decode may leave (the size of part_o / part_ml).
int attention_parts(int max_seq);

// Decode attention for the token at position *d_pos (context *d_pos + 1), GQA, fused with its RoPE and
// KV-cache write: qkv is the QKV projection of that token before RoPE ([(n_heads + 2 n_kv) * hd]). The
// context is split into tiles of kAttnTile positions, taken by the slots of a block, in runs across up to
// kAttnMaxRuns blocks per kv head; the last block of each kv head merges them. part_o: [n_heads,
// attention_parts(max_seq), hd], part_ml: [n_heads, attention_parts(max_seq), 2] scratch; counters: [n_kv], zero before the first call (each call
// leaves them zero); out: [n_heads * hd]. hd: a multiple of 4 up to kAttnMaxHeadDim.
// stamps (instrumentation, null by default): kTimelineStamps (gemv.cuh) per block (n_kv x attention_parts
// blocks, kv head fastest): [0] entry, [1] after pdl_wait, [2] q staged, [3] exit; blocks beyond the
// context write none.
void attention_decode(const float* qkv, const int* d_pos, const float2* rope, int max_seq, int n_heads, int n_kv,
                      int hd, bool interleaved, float* k_cache, float* v_cache, float* part_o, float* part_ml,
                      unsigned* counters, float* out, cudaStream_t s, unsigned long long* stamps = nullptr);

// Causal attention for n query tokens at positions *d_pos + i (each sees [0, *d_pos + i]).
// q: [n, n_heads*hd]; out: [n, n_heads*hd]. max_ctx bounds the context (shared memory sizing).
void attention_prefill(const float* q, const float* k_cache, const float* v_cache, const int* d_pos, int n,
                       int max_ctx, int n_heads, int n_kv, int hd, float* out, cudaStream_t s);

// out[r, :] = bf16(x[r, :] * rsqrt(mean(x^2) + eps) * w) for r < n (the prefill GEMM path).
void rmsnorm_to_bf16(const float* x, const float* w, int n, int dim, float eps, __nv_bfloat16* out, cudaStream_t s);
// out = bf16(x) elementwise.
void f32_to_bf16(const float* x, int64_t count, __nv_bfloat16* out, cudaStream_t s);
// out = float(x) elementwise.
void bf16_to_f32(const __nv_bfloat16* x, int64_t count, float* out, cudaStream_t s);
// x += y elementwise.
void add_inplace(float* x, const float* y, int64_t count, cudaStream_t s);
// out[r, j] = bf16(silu(gu[r, j]) * gu[r, H + j]) for gu: [n, 2H] (gate rows then up rows).
void swiglu_to_bf16(const float* gu, int n, int H, __nv_bfloat16* out, cudaStream_t s);

struct SampleParams {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;
  float top_p = 1.0f;
  unsigned long long seed = 0;
};

// Samples the next token from logits[V] into d_token[0]; then *d_pos += advance and *d_step += 1.
// Greedy: argmax (lowest id on ties). Otherwise temperature, top-k and top-p as thresholds found by
// bisection, and one uniform draw u(seed, *d_step) (the same draw sequence as the CPU Sampler).
void sample(const float* logits, int V, SampleParams p, int* d_token, int* d_pos, int advance,
            unsigned long long* d_step, cudaStream_t s);

}  // namespace lowbit::cuda

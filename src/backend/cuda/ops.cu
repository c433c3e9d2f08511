#include <cuda_fp16.h>

#include <cfloat>
#include <cstdlib>

#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/ops.cuh"
#include "backend/cuda/warp.cuh"

namespace lowbit::cuda {

namespace {


// Block-wide sum/max through shared memory (blockDim.x a multiple of 32, <= 1024). All threads get the result.
template <bool kMax>
__device__ float block_reduce(float v, float* red /* [32] */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = lane < nw ? red[lane] : (kMax ? -FLT_MAX : 0.0f);
  r = kMax ? warp_max(r) : warp_sum(r);
  return r;
}

__global__ void embed_kernel(const void* table, EmbedType type, int dim, const int* tokens, float* x) {
  pdl_wait();
  pdl_trigger();
  const int i = blockIdx.x;
  const size_t row = size_t(tokens[i]) * dim;
  float* out = x + size_t(i) * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float v;
    if (type == EmbedType::F32) v = static_cast<const float*>(table)[row + d];
    else if (type == EmbedType::BF16) v = __bfloat162float(static_cast<const __nv_bfloat16*>(table)[row + d]);
    else v = __half2float(static_cast<const __half*>(table)[row + d]);
    out[d] = v;
  }
}

__global__ void rope_qkv_kernel(const float* qkv, const int* d_pos, const float2* rope, int n_heads, int n_kv,
                                int hd, bool interleaved, float* q_out, float* k_cache, float* v_cache) {
  pdl_wait();
  pdl_trigger();
  const int i = blockIdx.x;
  const int p = *d_pos + i;
  const int qd = n_heads * hd, kvd = n_kv * hd, half = hd / 2;
  const float* src = qkv + size_t(i) * (qd + 2 * kvd);
  const float2* cs = rope + size_t(p) * half;
  // rotate every (q or k) pair; one thread per pair
  const int pairs = (n_heads + n_kv) * half;
  for (int j = threadIdx.x; j < pairs; j += blockDim.x) {
    const int head = j / half, r = j % half;
    const int base = head * hd;  // q heads then k heads are contiguous in qkv
    const int a = interleaved ? base + 2 * r : base + r;
    const int b = interleaved ? base + 2 * r + 1 : base + r + half;
    const float x0 = src[a], x1 = src[b];
    const float2 c = cs[r];
    const float y0 = x0 * c.x - x1 * c.y, y1 = x0 * c.y + x1 * c.x;
    if (head < n_heads) {
      q_out[size_t(i) * qd + a] = y0;
      q_out[size_t(i) * qd + b] = y1;
    } else {
      float* kr = k_cache + size_t(p) * kvd;
      kr[a - qd] = y0;
      kr[b - qd] = y1;
    }
  }
  for (int j = threadIdx.x; j < kvd; j += blockDim.x) v_cache[size_t(p) * kvd + j] = src[qd + kvd + j];
}

// Decode attention for the token at position p = *d_pos, fused with its RoPE and KV-cache write.
// grid (n_kv, max_chunks), block 128: block (kvh, c) handles the query heads of kv head kvh over positions
// [c * kAttnChunk, min(p + 1, (c + 1) * kAttnChunk)). Every block rotates the group's q itself (a few
// hundred values); the block whose chunk holds p rotates k and writes k and v at p, which no other block
// reads. Each block leaves its (max, sum, unnormalised output) per head; the last block of a kv head to
// finish (an atomic count) merges the chunks and resets the count for the next step.
// Shared: q [group, hd] + scores [group, kAttnChunk].
// G: the group size when known at compile time (1, 2, 4, 8, 16: loops without branches, so that the loads
// of a batch are issued together), 0 for any other (up to kAttnMaxGroup).
template <int G>
__global__ void attn_decode_kernel(const float* qkv, const int* d_pos, const float2* rope, int n_heads, int n_kv,
                                   int hd, bool interleaved, float scale, int max_chunks, float* kc, float* vc,
                                   float* part_o, float* part_ml, unsigned* counters, float* out) {
  pdl_wait();
  pdl_trigger();
  extern __shared__ float sm[];
  __shared__ bool is_last;
  const int kvh = blockIdx.x, chunk = blockIdx.y;
  const int pos = *d_pos, ctx = pos + 1;
  const int t0 = chunk * kAttnChunk;
  const int nchunks = (ctx + kAttnChunk - 1) / kAttnChunk;
  if (chunk >= nchunks) return;  // beyond the context: neither counted nor combined
  const int t1 = min(ctx, t0 + kAttnChunk), nt = t1 - t0;
  const int group = G > 0 ? G : n_heads / n_kv, kvd = n_kv * hd, qd = n_heads * hd, half = hd / 2;
  constexpr int NG = G > 0 ? G : kAttnMaxGroup;  // accumulators per thread
  const float2* cs = rope + size_t(pos) * half;
  float* qs = sm;                   // [group, hd] rotated q
  float* sc = sm + group * hd;      // [group, kAttnChunk]
  for (int j = threadIdx.x; j < group * half; j += blockDim.x) {
    const int g = j / half, r = j % half;
    const int a = interleaved ? 2 * r : r, b = interleaved ? 2 * r + 1 : r + half;
    const float* src = qkv + size_t(kvh * group + g) * hd;
    const float x0 = src[a], x1 = src[b];
    const float2 c = cs[r];
    qs[g * hd + a] = x0 * c.x - x1 * c.y;
    qs[g * hd + b] = x0 * c.y + x1 * c.x;
  }
  if (chunk == nchunks - 1) {  // this chunk holds position pos: write its k (rotated) and v
    const float* ks = qkv + qd + size_t(kvh) * hd;
    float* kd = kc + size_t(pos) * kvd + size_t(kvh) * hd;
    for (int r = threadIdx.x; r < half; r += blockDim.x) {
      const int a = interleaved ? 2 * r : r, b = interleaved ? 2 * r + 1 : r + half;
      const float x0 = ks[a], x1 = ks[b];
      const float2 c = cs[r];
      kd[a] = x0 * c.x - x1 * c.y;
      kd[b] = x0 * c.y + x1 * c.x;
    }
    for (int j = threadIdx.x; j < hd; j += blockDim.x)
      vc[size_t(pos) * kvd + size_t(kvh) * hd + j] = qkv[qd + kvd + size_t(kvh) * hd + j];
  }
  __syncthreads();  // q in shared memory; the new k/v row visible to the whole block
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  // scores: two adjacent threads per position (each half of the k row), all heads of the group at once,
  // the halves added with one shuffle; positions beyond the context get 0 (read by P.V below)
  for (int i = threadIdx.x; i < 2 * kAttnChunk; i += blockDim.x) {
    const int t = i >> 1, part = i & 1;
    float acc[NG];
#pragma unroll
    for (int g = 0; g < NG; ++g) acc[g] = 0.0f;
    if (t < nt) {
      const float* k = kc + size_t(t0 + t) * kvd + size_t(kvh) * hd;
      if (G > 0 && (hd & 63) == 0 && (kvd & 3) == 0) {
        // batches of 8 float4 loads issued before their use (memory-level parallelism)
        const float* kh = k + part * (hd / 2);
        const float* qh = qs + part * (hd / 2);
        for (int j0 = 0; j0 < hd / 8; j0 += 8) {
          float4 kv[8];
#pragma unroll
          for (int j = 0; j < 8; ++j) kv[j] = *reinterpret_cast<const float4*>(kh + 4 * (j0 + j));
#pragma unroll
          for (int j = 0; j < 8; ++j)
#pragma unroll
            for (int g = 0; g < NG; ++g) {
              const float4 q4 = *reinterpret_cast<const float4*>(qh + g * hd + 4 * (j0 + j));
              acc[g] = fmaf(q4.x, kv[j].x, fmaf(q4.y, kv[j].y, fmaf(q4.z, kv[j].z, fmaf(q4.w, kv[j].w, acc[g]))));
            }
        }
      } else if (part == 0) {
        for (int d = 0; d < hd; ++d) {
          const float kv = k[d];
#pragma unroll
          for (int g = 0; g < NG; ++g) {
            if (g >= group) break;
            acc[g] = fmaf(qs[g * hd + d], kv, acc[g]);
          }
        }
      }
    }
#pragma unroll
    for (int g = 0; g < NG; ++g) {
      if (g >= group) break;
      const float v = acc[g] + __shfl_xor_sync(0xffffffffu, acc[g], 1);
      if (part == 0) sc[g * kAttnChunk + t] = t < nt ? v * scale : 0.0f;
    }
  }
  __syncthreads();
  for (int g = warp; g < group; g += nw) {
    float m = -FLT_MAX;
    for (int t = lane; t < nt; t += 32) m = fmaxf(m, sc[g * kAttnChunk + t]);
    m = warp_max(m);
    float l = 0.0f;
    for (int t = lane; t < nt; t += 32) {
      const float e = __expf(sc[g * kAttnChunk + t] - m);
      sc[g * kAttnChunk + t] = e;
      l += e;
    }
    l = warp_sum(l);
    if (lane == 0) {
      float* ml = part_ml + (size_t(kvh * group + g) * max_chunks + chunk) * 2;
      ml[0] = m;
      ml[1] = l;
    }
  }
  __syncthreads();
  // P.V: a thread per dimension, all heads of the group at once; v rows in batches of 16 loads issued
  // before their use (weights beyond the context are 0, their rows not read)
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    const float* v = vc + size_t(t0) * kvd + size_t(kvh) * hd + d;
    float acc[NG];
#pragma unroll
    for (int g = 0; g < NG; ++g) acc[g] = 0.0f;
    for (int tb = 0; tb < nt; tb += 16) {
      float vv[16];
#pragma unroll
      for (int j = 0; j < 16; ++j) vv[j] = tb + j < nt ? v[size_t(tb + j) * kvd] : 0.0f;
#pragma unroll
      for (int j = 0; j < 16; ++j)
#pragma unroll
        for (int g = 0; g < NG; ++g) {
          if (G == 0 && g >= group) break;
          acc[g] = fmaf(sc[g * kAttnChunk + tb + j], vv[j], acc[g]);
        }
    }
#pragma unroll
    for (int g = 0; g < NG; ++g) {
      if (g >= group) break;
      part_o[(size_t(kvh * group + g) * max_chunks + chunk) * hd + d] = acc[g];
    }
  }
  // publish the partials, then count this chunk; the block that completes the count merges
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) is_last = atomicAdd(&counters[kvh], 1u) == unsigned(nchunks - 1);
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  if (threadIdx.x == 0) counters[kvh] = 0;  // the next decode step (a graph replay) counts from zero
  for (int j = threadIdx.x; j < group * hd; j += blockDim.x) {
    const int h = kvh * group + j / hd, d = j % hd;
    const float* ml = part_ml + size_t(h) * max_chunks * 2;
    float M = -FLT_MAX;
    for (int c = 0; c < nchunks; ++c) M = fmaxf(M, __ldcg(ml + 2 * c));
    float L = 0.0f, acc = 0.0f;
    for (int c = 0; c < nchunks; ++c) {
      const float w = __expf(__ldcg(ml + 2 * c) - M);  // L2 loads: the partials come from other blocks
      L += __ldcg(ml + 2 * c + 1) * w;
      acc += __ldcg(part_o + (size_t(h) * max_chunks + c) * hd + d) * w;
    }
    out[size_t(h) * hd + d] = acc / L;
  }
}

// grid (n, n_heads), block 128; dynamic shared: scores [max_ctx] + reduction scratch.
__global__ void attn_prefill_kernel(const float* q, const float* kc, const float* vc, const int* d_pos, int n_heads,
                                    int n_kv, int hd, float scale, float* out) {
  pdl_wait();
  pdl_trigger();
  extern __shared__ float sm[];
  __shared__ float red[32];
  const int i = blockIdx.x, h = blockIdx.y;
  const int ctx = *d_pos + i + 1;
  const int group = n_heads / n_kv, kvh = h / group, kvd = n_kv * hd, qd = n_heads * hd;
  const float* qv = q + size_t(i) * qd + size_t(h) * hd;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int t = warp; t < ctx; t += nw) {
    const float* k = kc + size_t(t) * kvd + size_t(kvh) * hd;
    float s = 0.0f;
    for (int d = lane; d < hd; d += 32) s += qv[d] * k[d];
    s = warp_sum(s);
    if (lane == 0) sm[t] = s * scale;
  }
  __syncthreads();
  float m = -FLT_MAX;
  for (int t = threadIdx.x; t < ctx; t += blockDim.x) m = fmaxf(m, sm[t]);
  m = block_reduce<true>(m, red);
  float l = 0.0f;
  for (int t = threadIdx.x; t < ctx; t += blockDim.x) {
    const float e = __expf(sm[t] - m);
    sm[t] = e;
    l += e;
  }
  l = block_reduce<false>(l, red);  // its barriers also publish the exponentials
  const float invl = 1.0f / l;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    const float* v = vc + size_t(kvh) * hd + d;
    float acc = 0.0f;
    for (int t = 0; t < ctx; ++t) acc += sm[t] * v[size_t(t) * kvd];
    out[size_t(i) * qd + size_t(h) * hd + d] = acc * invl;
  }
}

__global__ void rmsnorm_bf16_kernel(const float* x, const float* w, int dim, float eps, __nv_bfloat16* out) {
  pdl_wait();
  pdl_trigger();
  __shared__ float red[32];
  const float* xr = x + size_t(blockIdx.x) * dim;
  float ss = 0.0f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) ss += xr[d] * xr[d];
  ss = block_reduce<false>(ss, red);
  const float inv = rsqrtf(ss / dim + eps);
  for (int d = threadIdx.x; d < dim; d += blockDim.x)
    out[size_t(blockIdx.x) * dim + d] = __float2bfloat16(xr[d] * inv * w[d]);
}

__global__ void f32_to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* out) {
  pdl_wait();
  pdl_trigger();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(x[i]);
}

__global__ void bf16_to_f32_kernel(const __nv_bfloat16* x, int64_t n, float* out) {
  pdl_wait();
  pdl_trigger();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __bfloat162float(x[i]);
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  pdl_wait();
  pdl_trigger();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

__global__ void swiglu_bf16_kernel(const float* gu, int n, int H, __nv_bfloat16* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t total = int64_t(n) * H;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / H, j = i % H;
    const float g = gu[r * 2 * H + j], u = gu[r * 2 * H + H + j];
    out[i] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
  }
}

// ---- sampling ----------------------------------------------------------------------------------------

// The same counter-based draw as Sampler::uniform_for_step (splitmix64 of seed ^ step * odd constant).
__device__ float uniform_for_step(unsigned long long seed, unsigned long long step) {
  unsigned long long z = (seed ^ (step * 0xd1b54a32d192ed03ull)) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return float(z >> 40) * (1.0f / 16777216.0f);
}

// Monotonic map of a float to an unsigned key (larger float -> larger key), for bisection on values.
__device__ __forceinline__ unsigned fkey(float f) {
  const unsigned u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

constexpr int kSampleThreads = 1024;

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(const float* logits, int V, SampleParams p,
                                                                int* d_token, int* d_pos, int advance,
                                                                unsigned long long* d_step) {
  pdl_wait();
  pdl_trigger();
  __shared__ float red[32];
  __shared__ int red_i[32];
  __shared__ float scan[kSampleThreads];
  __shared__ int chosen;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;

  // argmax (lowest id on ties); also the max used by the softmax below
  float bv = -FLT_MAX;
  int bi = 0x7fffffff;
  for (int i = tid; i < V; i += blockDim.x) {
    const float v = logits[i];
    if (v > bv) { bv = v; bi = i; }  // ascending i per thread: strict > keeps the lowest id
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
  }
  if (lane == 0) { red[warp] = bv; red_i[warp] = bi; }
  __syncthreads();
  if (tid == 0) {
    float v = red[0];
    int ix = red_i[0];
    for (int w = 1; w < nw; ++w)
      if (red[w] > v || (red[w] == v && red_i[w] < ix)) { v = red[w]; ix = red_i[w]; }
    red[0] = v;
    chosen = ix;
  }
  __syncthreads();
  const float mx = red[0];

  if (p.temperature > 0.0f) {
    // top-k: tau = the k-th largest key (count(key >= tau) >= k, count(key >= tau + 1) < k)
    unsigned tau = 0;
    if (p.top_k > 0 && p.top_k < V) {
      unsigned lo = 0, hi = 0xffffffffu;
      while (lo < hi) {
        // 64-bit: hi - lo + 1 overflows 32 bits on the first step (lo = 0, hi = 2^32 - 1)
        const unsigned mid = lo + unsigned((uint64_t(hi) - lo + 1) / 2);
        float c = 0.0f;
        for (int i = tid; i < V; i += blockDim.x) c += fkey(logits[i]) >= mid ? 1.0f : 0.0f;
        c = block_reduce<false>(c, red);
        if (c >= float(p.top_k)) lo = mid; else hi = mid - 1;
      }
      tau = lo;
    }
    const float inv_t = 1.0f / p.temperature;
    auto weight = [&](int i) {
      const float l = logits[i];
      return fkey(l) >= tau ? __expf((l - mx) * inv_t) : 0.0f;
    };
    float W = 0.0f;
    for (int i = tid; i < V; i += blockDim.x) W += weight(i);
    W = block_reduce<false>(W, red);
    // top-p: the largest weight threshold whose kept mass reaches top_p * W (weights are in (0, 1])
    unsigned wt = 0;
    if (p.top_p < 1.0f) {
      unsigned lo = 0, hi = __float_as_uint(1.0f);
      while (lo < hi) {
        const unsigned mid = lo + unsigned((uint64_t(hi) - lo + 1) / 2);
        float m = 0.0f;
        for (int i = tid; i < V; i += blockDim.x) {
          const float w = weight(i);
          m += __float_as_uint(w) >= mid ? w : 0.0f;
        }
        m = block_reduce<false>(m, red);
        if (m >= p.top_p * W) lo = mid; else hi = mid - 1;
      }
      wt = lo;
    }
    // draw: inverse CDF over the kept weights in id order; each thread owns a contiguous id range
    const int per = (V + blockDim.x - 1) / blockDim.x;
    const int b = tid * per, e = min(V, b + per);
    float own = 0.0f;
    for (int i = b; i < e; ++i) {
      const float w = weight(i);
      own += __float_as_uint(w) >= wt ? w : 0.0f;
    }
    scan[tid] = own;
    __syncthreads();
    for (int off = 1; off < blockDim.x; off <<= 1) {  // Hillis-Steele inclusive scan
      const float add = tid >= off ? scan[tid - off] : 0.0f;
      __syncthreads();
      scan[tid] += add;
      __syncthreads();
    }
    const float total = scan[blockDim.x - 1];
    const float u = uniform_for_step(p.seed, *d_step) * total;
    const float before = scan[tid] - own;
    if (tid == 0) chosen = -1;
    __syncthreads();
    if (own > 0.0f && u >= before && u < scan[tid]) {
      float acc = before;
      int pick = -1;
      for (int i = b; i < e; ++i) {
        const float w = weight(i);
        if (__float_as_uint(w) < wt || w == 0.0f) continue;
        pick = i;
        acc += w;
        if (u < acc) break;
      }
      chosen = pick;
    }
    __syncthreads();
    if (tid == 0 && chosen < 0) {  // u landed on the rounding edge of the total: take the last kept id
      for (int i = V - 1; i >= 0; --i) {
        const float w = weight(i);
        if (w > 0.0f && __float_as_uint(w) >= wt) { chosen = i; break; }
      }
    }
    __syncthreads();
  }
  if (tid == 0) {
    d_token[0] = chosen;
    *d_pos += advance;
    *d_step += 1;
  }
}

}  // namespace

bool pdl_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("LOWBIT_PDL");
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
      return false;
    return major >= 9 && !(e && e[0] == '0');
  }();
  return on;
}

namespace {

inline int grid_for(int64_t n, int threads) {
  int64_t g = (n + threads - 1) / threads;
  return int(g < 4096 ? (g > 0 ? g : 1) : 4096);
}

}  // namespace

void embed(const void* table, EmbedType type, int dim, const int* d_tokens, int n, float* x, cudaStream_t s) {
  launch(embed_kernel, n, 256, 0, s, table, type, dim, d_tokens, x);
}

void rope_qkv_write(const float* qkv, int n, const int* d_pos, const float2* rope, int n_heads, int n_kv, int hd,
                    bool interleaved, float* q_out, float* k_cache, float* v_cache, cudaStream_t s) {
  launch(rope_qkv_kernel, n, 256, 0, s, qkv, d_pos, rope, n_heads, n_kv, hd, interleaved, q_out, k_cache, v_cache);
}

void attention_decode(const float* qkv, const int* d_pos, const float2* rope, int max_seq, int n_heads, int n_kv,
                      int hd, bool interleaved, float* k_cache, float* v_cache, float* part_o, float* part_ml,
                      unsigned* counters, float* out, cudaStream_t s) {
  const int max_chunks = (max_seq + kAttnChunk - 1) / kAttnChunk;
  const int group = n_heads / n_kv;
  const size_t smem = size_t(group) * (hd + kAttnChunk) * sizeof(float);
  const float scale = 1.0f / sqrtf(float(hd));
  LB_CHECK(group <= kAttnMaxGroup, "attention_decode: ", n_heads, " query heads per ", n_kv, " kv heads = ", group,
           " per group, at most ", kAttnMaxGroup, " supported");
  auto run = [&](auto kernel) {
    launch(kernel, dim3(n_kv, max_chunks), 128, smem, s, qkv, d_pos, rope, n_heads, n_kv, hd, interleaved, scale,
           max_chunks, k_cache, v_cache, part_o, part_ml, counters, out);
  };
  switch (group) {
    case 1: run(attn_decode_kernel<1>); break;
    case 2: run(attn_decode_kernel<2>); break;
    case 4: run(attn_decode_kernel<4>); break;
    case 8: run(attn_decode_kernel<8>); break;
    case 16: run(attn_decode_kernel<16>); break;
    default: run(attn_decode_kernel<0>); break;
  }
}

void attention_prefill(const float* q, const float* k_cache, const float* v_cache, const int* d_pos, int n,
                       int max_ctx, int n_heads, int n_kv, int hd, float* out, cudaStream_t s) {
  const size_t smem = size_t(max_ctx) * sizeof(float);
  static bool raised = false;  // the opt-in above 48 KB is per kernel, once per process
  if (!raised) {
    int dev = 0, optin = 0;
    LB_CUDA_CHECK(cudaGetDevice(&dev));
    LB_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    LB_CUDA_CHECK(cudaFuncSetAttribute(attn_prefill_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin - 1024));
    raised = true;
  }
  const float scale = 1.0f / sqrtf(float(hd));
  launch(attn_prefill_kernel, dim3(n, n_heads), 128, smem, s, q, k_cache, v_cache, d_pos, n_heads, n_kv, hd, scale, out);
}

void rmsnorm_to_bf16(const float* x, const float* w, int n, int dim, float eps, __nv_bfloat16* out, cudaStream_t s) {
  launch(rmsnorm_bf16_kernel, n, 256, 0, s, x, w, dim, eps, out);
}

void f32_to_bf16(const float* x, int64_t count, __nv_bfloat16* out, cudaStream_t s) {
  launch(f32_to_bf16_kernel, grid_for(count, 256), 256, 0, s, x, count, out);
}

void bf16_to_f32(const __nv_bfloat16* x, int64_t count, float* out, cudaStream_t s) {
  launch(bf16_to_f32_kernel, grid_for(count, 256), 256, 0, s, x, count, out);
}

void add_inplace(float* x, const float* y, int64_t count, cudaStream_t s) {
  launch(add_kernel, grid_for(count, 256), 256, 0, s, x, y, count);
}

void swiglu_to_bf16(const float* gu, int n, int H, __nv_bfloat16* out, cudaStream_t s) {
  launch(swiglu_bf16_kernel, grid_for(int64_t(n) * H, 256), 256, 0, s, gu, n, H, out);
}

void sample(const float* logits, int V, SampleParams p, int* d_token, int* d_pos, int advance,
            unsigned long long* d_step, cudaStream_t s) {
  launch(sample_kernel, 1, kSampleThreads, 0, s, logits, V, p, d_token, d_pos, advance, d_step);
}

}  // namespace lowbit::cuda

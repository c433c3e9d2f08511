#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>
#include <cstdlib>
#include <map>
#include <type_traits>

#include "backend/cuda/async_copy.cuh"
#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/gemv.cuh"
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

// K rows and q rows are padded by this many floats (16 bytes: rows 16 bytes apart modulo 128, so that 8 lanes
// reading float4s of 8 rows hit 32 distinct banks).
constexpr int kAttnRowPad = 4;

// The grouped tile round (G = 4 heads of 128 dimensions). The per-head round (attn_decode_kernel) has each
// of a slot's 4 warps read the whole K and V tile for its head: 16 warps x ~32 KB of shared-memory reads per
// block and round, ~2 us at 128 bytes per cycle. Here warp w of a slot takes positions 8 w .. 8 w + 7 of the tile
// for all 4 heads, lane = (head lane / 8, position lane % 8): each K-row float4 is read once per
// instruction for the 4 heads (8 distinct rows and 4 distinct q rows, all padded: conflict-free), and in
// P.V each V-row float4 once for the 4 heads; the warp keeps its own online softmax per head (merged with
// the other warps' after the rounds). m, l: this lane's head; acc[h]: dimensions 4 lane .. 4 lane + 3.
struct AttnGroupState {
  float m = -FLT_MAX, l = 0.0f;
  float4 acc[4] = {};
};
__device__ __forceinline__ void attn_grouped_tile(AttnGroupState& st, const float* kt, const float* vt,
                                                  const float* qs, int nt, int wq, int lane, float scale) {
  constexpr unsigned kAll = 0xffffffffu;
  constexpr int kStride = 128 + kAttnRowPad;  // K and q rows
  const int pos = 8 * wq + (lane & 7);
  const int nj = min(8, nt - 8 * wq);  // this warp's positions in the tile (warp-uniform)
  if (nj <= 0) return;
  float sc = -FLT_MAX;
  if (pos < nt) {
    const float* kr = kt + pos * kStride;
    const float* qh = qs + (lane >> 3) * kStride;
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // four FMA chains
#pragma unroll
    for (int d = 0; d < 128; d += 16)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float4 k = *reinterpret_cast<const float4*>(kr + d + 4 * e);
        const float4 q = *reinterpret_cast<const float4*>(qh + d + 4 * e);
        c[e] = fmaf(q.x, k.x, fmaf(q.y, k.y, fmaf(q.z, k.z, fmaf(q.w, k.w, c[e]))));
      }
    sc = ((c[0] + c[1]) + (c[2] + c[3])) * scale;
  }
  // online softmax of this lane's head over the warp's positions: the head's 8 lanes (lane bits 0..2);
  // lane 8 h + 0 always holds a position (nj > 0)
  float mx = sc;
  mx = fmaxf(mx, __shfl_xor_sync(kAll, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(kAll, mx, 2));
  mx = fmaxf(mx, __shfl_xor_sync(kAll, mx, 4));
  const float mnew = fmaxf(st.m, mx);
  const float alpha = __expf(st.m - mnew);
  const float p = pos < nt ? __expf(sc - mnew) : 0.0f;
  float ps = p;
  ps += __shfl_xor_sync(kAll, ps, 1);
  ps += __shfl_xor_sync(kAll, ps, 2);
  ps += __shfl_xor_sync(kAll, ps, 4);
  st.l = st.l * alpha + ps;
  st.m = mnew;
#pragma unroll
  for (int h = 0; h < 4; ++h) {
    const float a = __shfl_sync(kAll, alpha, 8 * h);
    st.acc[h].x *= a;
    st.acc[h].y *= a;
    st.acc[h].z *= a;
    st.acc[h].w *= a;
  }
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (j >= nj) break;  // warp-uniform
    const float4 v = *reinterpret_cast<const float4*>(vt + (8 * wq + j) * 128 + 4 * lane);
#pragma unroll
    for (int h = 0; h < 4; ++h) {
      const float pj = __shfl_sync(kAll, p, 8 * h + j);
      st.acc[h].x = fmaf(pj, v.x, st.acc[h].x);
      st.acc[h].y = fmaf(pj, v.y, st.acc[h].y);
      st.acc[h].z = fmaf(pj, v.z, st.acc[h].z);
      st.acc[h].w = fmaf(pj, v.w, st.acc[h].w);
    }
  }
}

// Decode attention for the token at position p = *d_pos (context p + 1), fused with its RoPE and KV-cache
// write. grid (n_kv, max_parts), block 128 x slots (4 warps per slot). The context is cut into tiles of
// kAttnTile positions, and the tiles into at most max_parts (= attention_parts(max_seq)) contiguous runs of
// about `slots` tiles, one per block; the block's slots take its run's tiles in turn (tile tb + s, then
// tb + s + slots, ...), so that a context of up to slots tiles is one block per kv head and needs no merge
// across blocks. Block (kvh, r):
//  * before pdl_wait(): each slot copies its first tile's K and V rows (positions < p: written by earlier
//    steps, whose kernels have completed by then, see launch.cuh) into its shared memory with cp.async;
//  * rotates the group's q into shared memory; the block whose run holds p rotates k, writes k and v at p
//    to the caches and, where p's tile is its slot's first, into that slot's tile;
//  * per tile: a lane per position, a warp per query head (heads w, w + 4, ... of the slot's warp w):
//    scores, an online softmax (running max and sum per head), and P.V with a lane per 4 dimensions;
//    the slots work in rounds of one tile each, a slot's next tile copied after the round (one buffer each);
//  * the slots' (max, sum, unnormalised output) per head merge in shared memory; then one run writes the
//    output, several leave their partials and the last block of a kv head to finish (an atomic count)
//    merges the runs and resets the count.
// Shared: q [group][hd + kAttnRowPad], then per slot a K tile [kAttnTile][hd + kAttnRowPad] and a V tile
// [kAttnTile][hd].
// G: the group size when known at compile time (1, 2, 4, 8, 16), 0 for any other up to kAttnMaxGroup;
// HD: the head dimension when known at compile time (128: the loops over it unrolled), else 0.
// stamps (the step timeline, or null): [0] entry, [1] after pdl_wait, [2] q and the row at p staged, [3] exit;
// [4] the first round's tiles landed, [5] slot 0's tiles done (thread 0).
// kGrouped (G = 4, HD = 128: Llama 3): the tile round of attn_grouped_tile and its merge instead (below).
template <int G, int HD, bool kGrouped = false>
__global__ void __launch_bounds__(128 * kAttnMaxSlots) attn_decode_kernel(
    const float* qkv, const int* d_pos, const float2* rope, int n_heads, int n_kv, int hd_arg, bool interleaved,
    float scale, int max_parts, float* kc, float* vc, float* part_o, float* part_ml, unsigned* counters, float* out,
    unsigned long long* stamps, bool late_trigger) {
  static_assert(!kGrouped || (G == 4 && HD == 128), "the grouped round takes 4 heads of 128 dimensions");
  constexpr int NG = G > 0 ? G : kAttnMaxGroup;
  constexpr int HPW = (NG + 3) / 4;                                   // query heads per warp
  constexpr int DPL = (HD > 0 ? HD : kAttnMaxHeadDim) / 128 > 0 ? (HD > 0 ? HD : kAttnMaxHeadDim) / 128 : 1;
  // float4s of the output per lane and head
  const int hd = HD > 0 ? HD : hd_arg;
  extern __shared__ __align__(16) float sm[];
  __shared__ bool is_last;
  const int kvh = blockIdx.x, split = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
  const int slots = nwarps / 4, slot = warp >> 2, wq = warp & 3, stid = tid & 127;
  const int group = G > 0 ? G : n_heads / n_kv, kvd = n_kv * hd, qd = n_heads * hd, half = hd / 2, hd4 = hd / 4;
  const int ks = hd + kAttnRowPad, qstride = hd + kAttnRowPad;  // K and q rows padded
  float* qs = sm;                                                  // [group, qstride] rotated q
  float* kt = qs + group * qstride + slot * kAttnTile * (ks + hd); // this slot's K tile [kAttnTile][ks]
  float* vt = kt + kAttnTile * ks;                                 // and V tile [kAttnTile][hd]
  // *d_pos and rows < pos were written by kernels that have completed (launch.cuh): read before waiting
  const int pos = *d_pos, ctx = pos + 1;
  const int tiles = (ctx + kAttnTile - 1) / kAttnTile;
  const int runs = min(max_parts, (tiles + slots - 1) / slots), per_run = (tiles + runs - 1) / runs;
  const int nruns = (tiles + per_run - 1) / per_run;  // runs that hold at least one tile
  if (split >= nruns) return;                         // beyond the context: neither counted nor merged
  const int tb = split * per_run, te = min(tiles, tb + per_run);
  const bool holds_pos = te == tiles;                 // the run whose last tile holds position pos
  if (stamps) stamps += kTimelineStamps * (size_t(split) * gridDim.x + kvh);
  if (stamps && tid == 0) stamp_entry(stamps);

  // this slot's threads copy rows [t0, min(t0 + kAttnTile, limit)) of K and V into its tile, then commit
  auto copy_tile = [&](int tile, int limit) {
    const int t0 = tile * kAttnTile, rows = min(kAttnTile, limit - t0);
    for (int i = stid; i < rows * hd4; i += 128) {
      const int r = i / hd4, d = (i - r * hd4) * 4;
      const size_t src = size_t(t0 + r) * kvd + size_t(kvh) * hd + d;
      cp_async16(kt + r * ks + d, kc + src);
      cp_async16(vt + r * hd + d, vc + src);
    }
    cp_async_commit();
  };
  if (tb + slot < te) copy_tile(tb + slot, pos);

  pdl_wait();
  if (!late_trigger) pdl_trigger();  // else at exit (LOWBIT_ATTN_TRIGGER=late, A/B measurements)
  if (stamps && tid == 0) stamps[1] = global_ns();
  const float2* cs = rope + size_t(pos) * half;
  for (int j = tid; j < group * half; j += blockDim.x) {
    const int g = j / half, r = j % half;
    const int a = interleaved ? 2 * r : r, b = interleaved ? 2 * r + 1 : r + half;
    const float* src = qkv + size_t(kvh * group + g) * hd;
    const float x0 = src[a], x1 = src[b];
    const float2 c = cs[r];
    qs[g * qstride + a] = x0 * c.x - x1 * c.y;
    qs[g * qstride + b] = x0 * c.y + x1 * c.x;
  }
  if (holds_pos) {  // k (rotated) and v of position pos: to the caches, and to the tile that holds pos
    const int row = pos - (tiles - 1) * kAttnTile;
    const int ps = (tiles - 1 - tb) % slots;             // the slot that takes pos's tile,
    const bool first = tiles - 1 - tb < slots;           // as its first one (copied before the row existed)
    float* pk = qs + group * qstride + ps * kAttnTile * (ks + hd);
    float* pv = pk + kAttnTile * ks;
    const float* ksrc = qkv + qd + size_t(kvh) * hd;
    float* kd = kc + size_t(pos) * kvd + size_t(kvh) * hd;
    for (int r = tid; r < half; r += blockDim.x) {
      const int a = interleaved ? 2 * r : r, b = interleaved ? 2 * r + 1 : r + half;
      const float x0 = ksrc[a], x1 = ksrc[b];
      const float2 c = cs[r];
      const float y0 = x0 * c.x - x1 * c.y, y1 = x0 * c.y + x1 * c.x;
      kd[a] = y0;
      kd[b] = y1;
      if (first) {
        pk[row * ks + a] = y0;
        pk[row * ks + b] = y1;
      }
    }
    for (int j = tid; j < hd; j += blockDim.x) {
      const float v = qkv[qd + kvd + size_t(kvh) * hd + j];
      vc[size_t(pos) * kvd + size_t(kvh) * hd + j] = v;
      if (first) pv[row * hd + j] = v;
    }
    // otherwise the slot copies row pos back through L2 with that tile (after the barrier below)
    if (!first) __threadfence();
  }
  __syncthreads();  // q, the row at pos
  if (stamps && tid == 0) stamps[2] = global_ns();

  float m[HPW], l[HPW];
  float4 acc[HPW][DPL];
  AttnGroupState gs;  // kGrouped: this warp's positions, every head of the group
#pragma unroll
  for (int i = 0; i < HPW; ++i) {
    m[i] = -FLT_MAX;
    l[i] = 0.0f;
#pragma unroll
    for (int r = 0; r < DPL; ++r) acc[i][r] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  // rounds of one tile per slot (slot 0 takes the most); block-wide barriers, so that every thread meets
  // the same ones whatever its slot's share
  const int rounds = (te - tb + slots - 1) / slots;
  for (int k = 0; k < rounds; ++k) {
    const int tile = tb + slot + k * slots;
    if (k > 0) {
      __syncthreads();  // every slot is done with its previous tile
      if (tile < te) copy_tile(tile, ctx);
    }
    cp_async_wait(0);
    __syncthreads();  // the tiles' rows are visible
    if (stamps && tid == 0 && k == 0) stamps[4] = global_ns();
    if (tile >= te) continue;  // this slot has no tile this round (slot-uniform)
    const int t0 = tile * kAttnTile, nt = min(kAttnTile, ctx - t0);
    if constexpr (kGrouped) {
      attn_grouped_tile(gs, kt, vt, qs, nt, wq, lane, scale);
    } else {
      // scores: lane = position, the warp's heads at once (each K float4 read once for all of them)
      float s[HPW];
#pragma unroll
      for (int i = 0; i < HPW; ++i) s[i] = 0.0f;
      if (lane < nt) {
        const float* kr = kt + lane * ks;
        float s2[HPW];  // a second chain (the odd float4s) halves the dependent FMAs per score
#pragma unroll
        for (int i = 0; i < HPW; ++i) s2[i] = 0.0f;
#pragma unroll(HD > 0 ? 8 : 1)
        for (int d = 0; d < hd; d += 8) {
          const bool odd = d + 4 < hd;  // hd is a multiple of 4, maybe not of 8
          const float4 k0 = *reinterpret_cast<const float4*>(kr + d);
          const float4 k1 = odd ? *reinterpret_cast<const float4*>(kr + d + 4) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
          for (int i = 0; i < HPW; ++i) {
            const int h = wq + 4 * i;
            if (G == 0 || h < group) {
              const float* qh = qs + min(h, group - 1) * qstride + d;
              const float4 q0 = *reinterpret_cast<const float4*>(qh);
              s[i] = fmaf(q0.x, k0.x, fmaf(q0.y, k0.y, fmaf(q0.z, k0.z, fmaf(q0.w, k0.w, s[i]))));
              if (odd) {
                const float4 q1 = *reinterpret_cast<const float4*>(qh + 4);
                s2[i] = fmaf(q1.x, k1.x, fmaf(q1.y, k1.y, fmaf(q1.z, k1.z, fmaf(q1.w, k1.w, s2[i]))));
              }
            }
          }
        }
#pragma unroll
        for (int i = 0; i < HPW; ++i) s[i] += s2[i];
      }
      // online softmax per head, then P.V: lane owns dimensions 4 (lane + 32 r) .. + 3
#pragma unroll
      for (int i = 0; i < HPW; ++i) {
        const int h = wq + 4 * i;
        if (h >= group) break;  // warp-uniform
        const float sv = lane < nt ? s[i] * scale : -FLT_MAX;
        const float mnew = fmaxf(m[i], warp_max(sv));
        const float alpha = __expf(m[i] - mnew);
        const float p = lane < nt ? __expf(sv - mnew) : 0.0f;
        l[i] = l[i] * alpha + warp_sum(p);
        m[i] = mnew;
#pragma unroll
        for (int r = 0; r < DPL; ++r) {
          float4 o = acc[i][r];
          o.x *= alpha;
          o.y *= alpha;
          o.z *= alpha;
          o.w *= alpha;
          acc[i][r] = o;
        }
#pragma unroll 4
        for (int j = 0; j < nt; ++j) {
          const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
          for (int r = 0; r < DPL; ++r) {
            const int d = 4 * (lane + 32 * r);
            if (d < hd) {
              const float4 v = *reinterpret_cast<const float4*>(vt + j * hd + d);
              acc[i][r].x = fmaf(pj, v.x, acc[i][r].x);
              acc[i][r].y = fmaf(pj, v.y, acc[i][r].y);
              acc[i][r].z = fmaf(pj, v.z, acc[i][r].z);
              acc[i][r].w = fmaf(pj, v.w, acc[i][r].w);
            }
          }
        }
      }
    }
  }

  if (stamps && tid == 0) stamps[5] = global_ns();
  // the slots' runs merge per head in shared memory (the tiles are free once every slot is done): slot s
  // leaves (m, l) at ml[s][h] and its output at ac[s][h][hd]; then the warps of slot 0 combine them
  __syncthreads();
  float* ml = qs + group * qstride;               // [slots][group][2]
  float* ac = ml + ((slots * group * 2 + 3) & ~3);  // [slots][group][hd], 16-byte aligned
  if constexpr (kGrouped) {
    // 4 parts (warps) per slot, each with every head: (m, l) and output per part and head, then slot 0's
    // warp h merges head h into m[0], l[0], acc[0][0] (what the rest expects: HPW = DPL = 1 here)
    const int parts = 4 * slots, part = 4 * slot + wq;
    float* gac = ml + parts * 4 * 2;  // [parts][4][128] (parts * 8 floats: 16-byte aligned)
    if ((lane & 7) == 0) {
      ml[(part * 4 + (lane >> 3)) * 2] = gs.m;
      ml[(part * 4 + (lane >> 3)) * 2 + 1] = gs.l;
    }
#pragma unroll
    for (int h = 0; h < 4; ++h) *reinterpret_cast<float4*>(gac + (part * 4 + h) * 128 + 4 * lane) = gs.acc[h];
    __syncthreads();
    if (slot == 0) {
      float M = -FLT_MAX, L = 0.0f;
      float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      for (int q = 0; q < parts; ++q) M = fmaxf(M, ml[(q * 4 + wq) * 2]);
      for (int q = 0; q < parts; ++q) {  // a part without positions (m = -FLT_MAX, l = 0, output 0) weighs nothing
        const float w = __expf(ml[(q * 4 + wq) * 2] - M);
        L = fmaf(ml[(q * 4 + wq) * 2 + 1], w, L);
        const float4 v = *reinterpret_cast<const float4*>(gac + (q * 4 + wq) * 128 + 4 * lane);
        o.x = fmaf(w, v.x, o.x);
        o.y = fmaf(w, v.y, o.y);
        o.z = fmaf(w, v.z, o.z);
        o.w = fmaf(w, v.w, o.w);
      }
      m[0] = M;
      l[0] = L;
      acc[0][0] = o;
    }
  } else if (slots > 1) {
#pragma unroll
    for (int i = 0; i < HPW; ++i) {
      const int h = wq + 4 * i;
      if (h >= group) break;
      if (lane == 0) {
        ml[(slot * group + h) * 2] = m[i];
        ml[(slot * group + h) * 2 + 1] = l[i];
      }
#pragma unroll
      for (int r = 0; r < DPL; ++r) {
        const int d = 4 * (lane + 32 * r);
        if (d < hd) *reinterpret_cast<float4*>(ac + (size_t(slot) * group + h) * hd + d) = acc[i][r];
      }
    }
    __syncthreads();
    if (slot == 0) {
#pragma unroll
      for (int i = 0; i < HPW; ++i) {
        const int h = wq + 4 * i;
        if (h >= group) break;
        float M = -FLT_MAX;
        for (int s2 = 0; s2 < slots; ++s2) M = fmaxf(M, ml[(s2 * group + h) * 2]);
        float L = 0.0f;
#pragma unroll
        for (int r = 0; r < DPL; ++r) acc[i][r] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int s2 = 0; s2 < slots; ++s2) {
          // a slot without tiles (m = -FLT_MAX, l = 0, output 0) weighs nothing
          const float w = __expf(ml[(s2 * group + h) * 2] - M);
          L = fmaf(ml[(s2 * group + h) * 2 + 1], w, L);
#pragma unroll
          for (int r = 0; r < DPL; ++r) {
            const int d = 4 * (lane + 32 * r);
            if (d < hd) {
              const float4 v = *reinterpret_cast<const float4*>(ac + (size_t(s2) * group + h) * hd + d);
              acc[i][r].x = fmaf(w, v.x, acc[i][r].x);
              acc[i][r].y = fmaf(w, v.y, acc[i][r].y);
              acc[i][r].z = fmaf(w, v.z, acc[i][r].z);
              acc[i][r].w = fmaf(w, v.w, acc[i][r].w);
            }
          }
        }
        m[i] = M;
        l[i] = L;
      }
    }
  }

  // one run: the output; several: this run's partials, counted, and the last block merges
  if (slot == 0) {
#pragma unroll
    for (int i = 0; i < HPW; ++i) {
      const int h = wq + 4 * i;
      if (h >= group) break;
      const int head = kvh * group + h;
#pragma unroll
      for (int r = 0; r < DPL; ++r) {
        const int d = 4 * (lane + 32 * r);
        if (d >= hd) break;
        float4 o = acc[i][r];
        if (nruns == 1) {
          const float inv = 1.0f / l[i];
          o.x *= inv;
          o.y *= inv;
          o.z *= inv;
          o.w *= inv;
          *reinterpret_cast<float4*>(out + size_t(head) * hd + d) = o;
        } else {
          *reinterpret_cast<float4*>(part_o + (size_t(head) * max_parts + split) * hd + d) = o;
        }
      }
      if (nruns > 1 && lane == 0) {
        part_ml[(size_t(head) * max_parts + split) * 2] = m[i];
        part_ml[(size_t(head) * max_parts + split) * 2 + 1] = l[i];
      }
    }
  }
  if (nruns == 1) {
    if (stamps && tid == 0) stamps[3] = global_ns();
    return;
  }
  __threadfence();
  __syncthreads();
  if (tid == 0) is_last = atomicAdd(&counters[kvh], 1u) == unsigned(nruns - 1);
  __syncthreads();
  if (!is_last) {
    if (stamps && tid == 0) stamps[3] = global_ns();
    return;
  }
  __threadfence();
  if (tid == 0) counters[kvh] = 0;  // the next decode step (a graph replay) counts from zero
  // a thread per 4 outputs; the runs' partials loaded 8 at a time before their use (in-order issue would
  // otherwise wait out one L2 round trip per run); the first 8 of this thread's first outputs are requested
  // before the weights, so that their round trip overlaps that of the maxima and sums
  auto load8 = [&](const float* po, int c0, float4* p) {
#pragma unroll
    for (int c = 0; c < 8; ++c)
      p[c] = c0 + c < nruns ? __ldcg(reinterpret_cast<const float4*>(po + size_t(c0 + c) * hd))
                            : make_float4(0.f, 0.f, 0.f, 0.f);
  };
  auto partials = [&](int j) {
    const int h = j / hd4, d = (j - h * hd4) * 4;
    return part_o + size_t(kvh * group + h) * max_parts * hd + d;
  };
  float4 first[8];
  if (tid < group * hd4) load8(partials(tid), 0, first);
  // the runs' weights per head, exp(m_c - M) / L, into shared memory (the tiles are free now): a warp per
  // head, a lane per run (nruns <= kAttnMaxRuns = 32)
  float* wt = qs + group * qstride;  // [group][kAttnMaxRuns]
  for (int h = warp; h < group; h += nwarps) {
    const float* pm = part_ml + size_t(kvh * group + h) * max_parts * 2;
    const float mc = lane < nruns ? __ldcg(pm + 2 * lane) : -FLT_MAX;  // L2 loads: written by other blocks
    const float lc = lane < nruns ? __ldcg(pm + 2 * lane + 1) : 0.0f;
    const float M = warp_max(mc);
    const float w = lane < nruns ? __expf(mc - M) : 0.0f;
    const float L = warp_sum(lc * w);
    wt[h * kAttnMaxRuns + lane] = w / L;
  }
  __syncthreads();
  for (int j = tid; j < group * hd4; j += blockDim.x) {
    const int h = j / hd4, d = (j - h * hd4) * 4;
    const float* po = partials(j);
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int c0 = 0; c0 < nruns; c0 += 8) {
      float4 p[8];
      if (j == tid && c0 == 0) {
#pragma unroll
        for (int c = 0; c < 8; ++c) p[c] = first[c];
      } else {
        load8(po, c0, p);
      }
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const float w = c0 + c < nruns ? wt[h * kAttnMaxRuns + c0 + c] : 0.0f;
        o.x = fmaf(w, p[c].x, o.x);
        o.y = fmaf(w, p[c].y, o.y);
        o.z = fmaf(w, p[c].z, o.z);
        o.w = fmaf(w, p[c].w, o.w);
      }
    }
    *reinterpret_cast<float4*>(out + size_t(kvh * group + h) * hd + d) = o;
  }
  if (stamps && tid == 0) stamps[3] = global_ns();
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
  static EnvKnob<bool> knob([] {
    const char* e = std::getenv("LOWBIT_PDL");
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
      return false;
    return major >= 9 && !(e && e[0] == '0');
  });
  return knob.get();
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

int attention_parts(int max_seq) {
  const int tiles = (max_seq + kAttnTile - 1) / kAttnTile;
  return tiles < kAttnMaxRuns ? (tiles > 0 ? tiles : 1) : kAttnMaxRuns;
}

void attention_decode(const float* qkv, const int* d_pos, const float2* rope, int max_seq, int n_heads, int n_kv,
                      int hd, bool interleaved, float* k_cache, float* v_cache, float* part_o, float* part_ml,
                      unsigned* counters, float* out, cudaStream_t s, unsigned long long* stamps) {
  LB_CHECK(n_kv > 0 && n_heads % n_kv == 0, "attention_decode: ", n_heads, " query heads are not a multiple of ", n_kv,
           " kv heads");
  const int group = n_heads / n_kv;
  LB_CHECK(group <= kAttnMaxGroup, "attention_decode: ", n_heads, " query heads per ", n_kv, " kv heads = ", group,
           " per group, at most ", kAttnMaxGroup, " supported");
  LB_CHECK(hd % 4 == 0 && hd > 0 && hd <= kAttnMaxHeadDim, "attention_decode: head dimension ", hd,
           " unsupported (a multiple of 4, at most ", kAttnMaxHeadDim, ")");
  const int parts = attention_parts(max_seq);
  // as many slots (4 warps and one K and V tile each) as the shared memory holds, up to kAttnMaxSlots
  static const size_t smem_max = [] {
    int dev = 0, v = 0;
    LB_CUDA_CHECK(cudaGetDevice(&dev));
    LB_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return size_t(v);
  }();
  const size_t q_bytes = size_t(group) * (hd + kAttnRowPad) * sizeof(float);  // rows padded (attn_decode_kernel)
  const size_t slot_bytes = size_t(kAttnTile) * (2 * size_t(hd) + kAttnRowPad) * sizeof(float);
  // LOWBIT_ATTN_SLOTS=1..4 caps them (0, default: no cap; smaller blocks, for A/B measurements)
  static EnvKnob<int> slots_knob([] { return env_int("LOWBIT_ATTN_SLOTS", 0, 0, kAttnMaxSlots); });
  int slots = slots_knob.get() > 0 ? slots_knob.get() : kAttnMaxSlots;
  while (slots > 1 && q_bytes + slots * slot_bytes > smem_max) --slots;
  const size_t smem = q_bytes + slots * slot_bytes;
  LB_CHECK(smem <= smem_max, "attention_decode: ", smem, " bytes of shared memory for head dimension ", hd,
           " and group ", group, ", the GPU has ", smem_max);
  const float scale = 1.0f / sqrtf(float(hd));
  static EnvKnob<bool> late_knob([] { return env_switch("LOWBIT_ATTN_TRIGGER", "early", "late", false); });
  const bool late_trigger = late_knob.get();
  // LOWBIT_ATTN_GROUPED=0|1: 4 heads of 128 dimensions take the grouped tile round (attn_grouped_tile)
  static EnvKnob<bool> grouped_knob([] { return env_switch("LOWBIT_ATTN_GROUPED", "0", "1", true); });
  auto run = [&](auto kernel) {
    // the opt-in above 48 KB of dynamic shared memory, per kernel (the group sizes share one pointer type)
    static std::map<const void*, size_t> raised;
    size_t& r = raised[reinterpret_cast<const void*>(kernel)];
    if (smem > std::max<size_t>(r, 48 * 1024)) {
      LB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
      r = smem;
    }
    launch(kernel, dim3(n_kv, parts), 128 * slots, smem, s, qkv, d_pos, rope, n_heads, n_kv, hd, interleaved, scale, parts,
           k_cache, v_cache, part_o, part_ml, counters, out, stamps, late_trigger);
  };
  // the group size and (128 or any) head dimension as template arguments
  auto by_group = [&](auto hd_const) {
    constexpr int HD = decltype(hd_const)::value;
    switch (group) {
      case 1: run(attn_decode_kernel<1, HD>); break;
      case 2: run(attn_decode_kernel<2, HD>); break;
      case 4:
        if (HD == 128 && grouped_knob.get())
          run(attn_decode_kernel<4, HD, HD == 128>);
        else
          run(attn_decode_kernel<4, HD>);
        break;
      case 8: run(attn_decode_kernel<8, HD>); break;
      case 16: run(attn_decode_kernel<16, HD>); break;
      default: run(attn_decode_kernel<0, HD>); break;
    }
  };
  if (hd == 128)  // Llama 3 (but the 1B's 64)
    by_group(std::integral_constant<int, 128>{});
  else
    by_group(std::integral_constant<int, 0>{});
}

void attention_prefill(const float* q, const float* k_cache, const float* v_cache, const int* d_pos, int n,
                       int max_ctx, int n_heads, int n_kv, int hd, float* out, cudaStream_t s) {
  // whole 16-byte vectors: the compiler reads the tail of the P.V loop's weights with one 16-byte load
  // (compute-sanitizer flagged the read past a max_ctx-float allocation)
  const size_t smem = size_t((max_ctx + 3) / 4 * 4) * sizeof(float);
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

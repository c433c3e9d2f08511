// The stream GEMV kernels (variant `stream`, the default for 1..4 tokens): the weight is one stream of
// packets in tile order (tile = 16 rows; packet = one warp's 16-byte loads, see weights_layout.h), and
// every warp of a persistent grid (as many blocks as fit on the GPU at once) takes one contiguous share
// of it, so that every multiprocessor reads the same number of bytes whatever the shape (stream-K).
//
//  * x is normalized and staged once per block for the whole row (fp16 hi / lo for the tensor cores,
//    fp32 for the scalar kernel); the first two batches of weight loads are issued before that, ahead of
//    pdl_wait(), so they overlap the previous kernel's tail.
//  * loads are double-buffered in registers: batch i + 1 is in flight while batch i is computed.
//  * a tile whose packets are split between warps is finished by the warp that completes it last: each
//    piece stores its 16 row sums in a workspace, bumps the tile's counter, and the last one adds the
//    pieces in a fixed order (deterministic) and runs the epilogue; it also resets the counter.
//
// The workspace and counters are static device arrays of each translation unit: launches that use them
// must be serialized (one stream), which is how the runner, the tests and the benchmark call gemv().
#pragma once

#include "backend/cuda/gemv_kernels.cuh"

namespace lowbit::cuda {

constexpr int kStreamWsFloats = 1 << 20;  // 4 MB of partial sums: (tiles + warps) x 16 rows x 4 tokens
constexpr int kStreamCounters = 1 << 16;  // tiles (lm_head of a 128K vocabulary: 8016)
constexpr int kStreamMaxTokens = 4;

static __device__ float g_stream_ws[kStreamWsFloats];
static __device__ unsigned g_stream_cnt[kStreamCounters];

// Device addresses of this translation unit's workspace (host side).
inline void stream_workspace(float** ws, unsigned** cnt) {
  static float* w = nullptr;
  static unsigned* c = nullptr;
  if (!w) {
    LB_CUDA_CHECK(cudaGetSymbolAddress(reinterpret_cast<void**>(&w), g_stream_ws));
    LB_CUDA_CHECK(cudaGetSymbolAddress(reinterpret_cast<void**>(&c), g_stream_cnt));
  }
  *ws = w;
  *cnt = c;
}

// Packets per batch: two batches of codes and scales sit in registers (<= ~64 registers).
template <GpuCodec C>
constexpr int stream_unroll() {
  constexpr CodecInfo ci = codec_info(C);
  if (ci.pw == 3) return 2;     // fp6: 1.5 KB per packet
  if (ci.pks >= 16) return 1;   // int1: 8 scale units per packet
  if (ci.pks >= 8) return 2;    // int2, ternary
  return 4;                     // 8-bit, int4, fp4
}

// The epilogue of rows j and j + 8 of a tile for token m (v0, v1: their sums, before ys = factor * 2^e).
__device__ __forceinline__ void emit_rows(const GemvArgs& a, int64_t tile, int j, int m, float v0, float v1, float ys,
                                          bool divide) {
  float y0 = v0 * ys, y1 = v1 * ys;
  if (a.w.row_scale) {
    const float r0 = a.w.row_scale[tile * 16 + j], r1 = a.w.row_scale[tile * 16 + j + 8];
    y0 = divide ? y0 / r0 : y0 * r0;
    y1 = divide ? y1 / r1 : y1 * r1;
  }
  if (a.w.glu) {  // rows j and j + 8 are gate and up of output tile * 8 + j
    const int64_t n = tile * 8 + j;
    if (n < a.w.ff) store_out(a, m, n, silu(y0) * y1);
  } else {
    const int64_t n = tile * 16 + j;
    if (n < a.w.rows) store_out(a, m, n, y0);
    if (n + 8 < a.w.rows) store_out(a, m, n + 8, y1);
  }
}

// A warp's sums for tile `tile` are complete when it covered the whole tile; otherwise they are one piece:
// stored, counted, and the warp that brings the last piece adds all pieces (in piece order) and returns
// true with v0 / v1 replaced by the totals. NP pairs (row j, token m) per lane, `ok` where the lane holds one.
template <int NPAIR>
__device__ __forceinline__ bool stream_fixup(const GemvArgs& a, int tile, int wid, bool whole, const int* j,
                                             const int* m, const bool* ok, float* v0, float* v1) {
  if (whole) return true;
  const int lane = threadIdx.x & 31;
  const int first = tile * a.np / a.per_warp, last = (tile * a.np + a.np - 1) / a.per_warp;
  // piece index tile + warp: unique, since the warps of tile + 1 start where those of tile end
  float* mine = a.ws + int64_t(tile + wid) * 64;
#pragma unroll
  for (int i = 0; i < NPAIR; ++i)
    if (ok[i]) {
      __stcg(mine + j[i] * 4 + m[i], v0[i]);
      __stcg(mine + (j[i] + 8) * 4 + m[i], v1[i]);
    }
  __threadfence();  // the pieces are visible before the count says so
  __syncwarp();
  unsigned arrived = 0;
  if (lane == 0) arrived = atomicAdd(a.cnt + tile, 1u);
  arrived = __shfl_sync(0xffffffffu, arrived, 0);
  if (arrived != unsigned(last - first)) return false;
  __threadfence();
#pragma unroll
  for (int i = 0; i < NPAIR; ++i) {
    v0[i] = v1[i] = 0.0f;
    if (!ok[i]) continue;
    for (int w = first; w <= last; ++w) {
      const float* p = a.ws + int64_t(tile + w) * 64;
      v0[i] += __ldcg(p + j[i] * 4 + m[i]);
      v1[i] += __ldcg(p + (j[i] + 8) * 4 + m[i]);
    }
  }
  if (lane == 0) a.cnt[tile] = 0;  // every piece has arrived: ready for the next launch
  return true;
}

// ---- tensor-core formats ------------------------------------------------------------------------------

template <GpuCodec C>
__global__ void __launch_bounds__(kGemvThreads, 2) gemv_stream_mma_kernel(const GemvArgs a) {
  constexpr CodecInfo ci = codec_info(C);
  constexpr int PKS = ci.pks, PW = ci.pw, U = stream_unroll<C>();
  constexpr ScaleKind SK = ci.scale;
  constexpr int NSC = PKS / 2 > 0 ? PKS / 2 : 1;
  extern __shared__ __align__(16) uint8_t smem[];
  float* st = reinterpret_cast<float*>(smem + a.off_stats);
  float* gsum = reinterpret_cast<float*>(smem + a.off_gsum);
  uint32_t* xb = reinterpret_cast<uint32_t*>(smem + a.off_x);
  const uint4* lut = reinterpret_cast<const uint4*>(smem);  // T5 only: at offset 0
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int M = a.M, NP = a.np;
  const int total = int(a.w.rows_pad / 16) * NP;
  const int wid = int(blockIdx.x) * (blockDim.x >> 5) + (tid >> 5);
  const int pbeg = min(wid * a.per_warp, total), pend = min(pbeg + a.per_warp, total);
  const int64_t n_units = a.w.scale_units();
  const int gshift = SK == ScaleKind::Affine ? __ffs(a.w.group >> 5) - 1 : 0;  // group = 32 << gshift

  // batches never cross a tile: [q, q + len(q)) lies in one tile and in [pbeg, pend)
  auto len = [&](int q) -> int {
    if (q >= pend) return 0;
    return min(U, min((q / NP + 1) * NP, pend) - q);
  };
  uint32_t wA[U][4 * PW], wB[U][4 * PW];
  uint32_t sA[U][NSC][2], sB[U][NSC][2];
  auto load = [&](uint32_t (*w)[4 * PW], uint32_t (*s)[NSC][2], int q, int n) {
    const int tile = q / NP, kp = q - tile * NP;
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (u < n) load_packet<C>(a.w, int64_t(q) + u, tile, kp + u, lane, gshift, n_units, w[u], s[u]);
  };
  unsigned long long* stamps = a.timeline ? a.timeline + 4 * blockIdx.x : nullptr;
  if (stamps && tid == 0) stamps[0] = global_ns();
  int qA = pbeg, nA = len(qA);
  load(wA, sA, qA, nA);
  int qB = qA + nA, nB = len(qB);
  load(wB, sB, qB, nB);

  pdl_wait();  // launch.cuh: x, the outputs and the workspace only after this point
  pdl_trigger();
  if constexpr (C == GpuCodec::T5) {
    uint4* l = reinterpret_cast<uint4*>(smem);
    for (int i = tid; i < 256 * 8; i += blockDim.x) {
      const T5Entry e = t5_entry(uint32_t(i / 8));
      l[i] = make_uint4(e.p01, e.p23, e.p4, 0u);
    }
  }
  if (stamps && tid == 0) stamps[1] = global_ns();
  token_stats(a, st, true);
  stage_x_mma<C>(a, st, st + 8, xb, gsum, 0, NP);
  __syncthreads();
  if (stamps && tid == 0) stamps[2] = global_ns();
  const float* yscale = st + 16;

  float accC[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}};  // Row scale: the running MMA accumulators
  float accY[1][2] = {{0.0f, 0.0f}};              // scale units: rows g, g+8 of token t
  int seg = pbeg;                                 // where the current tile's piece began
  auto compute = [&](const uint32_t (*w)[4 * PW], const uint32_t (*s)[NSC][2], int q, int n) {
    const int tile = q / NP, kp = q - tile * NP;
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (u < n) mma_packet<C, 1>(w[u], s[u], (kp + u) * PKS, xb, a.xstride, gsum, a.gstride, M, lut, lane, accC, accY);
    const int qe = q + n;
    if (qe == (tile + 1) * NP || qe == pend) {
      float v0[1] = {SK == ScaleKind::Row ? accC[0][0] + accC[0][1] : accY[0][0]};
      float v1[1] = {SK == ScaleKind::Row ? accC[0][2] + accC[0][3] : accY[0][1]};
      const int jj[1] = {g}, mm[1] = {t};
      const bool ok[1] = {t < M};
      if (stream_fixup<1>(a, tile, wid, seg == tile * NP && qe == (tile + 1) * NP, jj, mm, ok, v0, v1) && t < M)
        emit_rows(a, tile, g, t, v0[0], v1[0], ci.factor * yscale[t], SK == ScaleKind::Nv);
      accC[0][0] = accC[0][1] = accC[0][2] = accC[0][3] = 0.0f;
      accY[0][0] = accY[0][1] = 0.0f;
      seg = qe;
    }
  };
  while (nA > 0) {
    compute(wA, sA, qA, nA);
    qA = qB + nB;
    nA = nB > 0 ? len(qA) : 0;
    load(wA, sA, qA, nA);
    if (nB == 0) break;
    compute(wB, sB, qB, nB);
    qB = qA + nA;
    nB = nA > 0 ? len(qB) : 0;
    load(wB, sB, qB, nB);
  }
  if (stamps) {  // block-uniform
    __syncthreads();
    if (tid == 0) stamps[3] = global_ns();
  }
}

// ---- f32 / bf16 / fp16: fp32 FMAs ---------------------------------------------------------------------
// A packet here is 16 rows x 256 bytes: lane (h = lane / 16, c = lane % 16) loads chunk c of rows h, h + 2,
// .. h + 14 (each load instruction of the warp reads two 256-byte row pieces).

template <GpuCodec C, int MT>
__global__ void __launch_bounds__(kGemvThreads, 2) gemv_stream_plain_kernel(const GemvArgs a) {
  constexpr int EPC = 16 / codec_info(C).esize;  // elements per 16-byte chunk
  extern __shared__ __align__(16) uint8_t smem[];
  float* st = reinterpret_cast<float*>(smem + a.off_stats);
  float* xs = reinterpret_cast<float*>(smem + a.off_x);
  const int tid = threadIdx.x, lane = tid & 31, h = lane >> 4, c = lane & 15;
  const int M = a.M, NP = a.np;
  const int total = int(a.w.rows_pad / 16) * NP;
  const int wid = int(blockIdx.x) * (blockDim.x >> 5) + (tid >> 5);
  const int pbeg = min(wid * a.per_warp, total), pend = min(pbeg + a.per_warp, total);
  const int64_t chunks_row = a.w.row_stride / 16;

  auto load = [&](uint4* buf, int q) {
    if (q >= pend) return;
    const int tile = q / NP, kp = q - tile * NP;
    const int64_t chunk = int64_t(kp) * 16 + c;
    const uint4* base = reinterpret_cast<const uint4*>(a.w.codes + (int64_t(tile) * 16 + h) * a.w.row_stride) + chunk;
    const int64_t step = 2 * chunks_row;  // two rows, in 16-byte chunks
#pragma unroll
    for (int i = 0; i < 8; ++i) buf[i] = chunk < chunks_row ? ldg_stream(base + i * step) : make_uint4(0u, 0u, 0u, 0u);
  };
  unsigned long long* stamps = a.timeline ? a.timeline + 4 * blockIdx.x : nullptr;
  if (stamps && tid == 0) stamps[0] = global_ns();
  uint4 bA[8], bB[8];
  int qA = pbeg;
  load(bA, qA);
  load(bB, qA + 1);

  pdl_wait();  // launch.cuh
  pdl_trigger();
  if (stamps && tid == 0) stamps[1] = global_ns();
  token_stats(a, st, false);
  stage_x_plain(a, st, xs, 0, a.xstride);
  __syncthreads();
  if (stamps && tid == 0) stamps[2] = global_ns();

  float acc[8][MT];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[i][m] = 0.0f;
  int seg = pbeg;
  auto compute = [&](const uint4* buf, int q) {
    const int tile = q / NP, kp = q - tile * NP;
    const int col = (kp * 16 + c) * EPC;
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (m >= M) break;
      float xv[EPC];
#pragma unroll
      for (int e4 = 0; e4 < EPC / 4; ++e4) {
        const float4 v = *reinterpret_cast<const float4*>(xs + m * a.xstride + col + 4 * e4);
        xv[4 * e4] = v.x;
        xv[4 * e4 + 1] = v.y;
        xv[4 * e4 + 2] = v.z;
        xv[4 * e4 + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        float wv[EPC];
        plain_decode<C>(buf[i], wv);
#pragma unroll
        for (int e = 0; e < EPC; ++e) acc[i][m] = fmaf(wv[e], xv[e], acc[i][m]);
      }
    }
    const int qe = q + 1;
    if (qe == (tile + 1) * NP || qe == pend) {
      // sum each row over the 16 lanes of its half-warp: lane c == 0 holds rows h + 2i
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          float v = acc[i][m];
          v += __shfl_xor_sync(0xffffffffu, v, 8);
          v += __shfl_xor_sync(0xffffffffu, v, 4);
          v += __shfl_xor_sync(0xffffffffu, v, 2);
          v += __shfl_xor_sync(0xffffffffu, v, 1);
          acc[i][m] = v;
        }
      // pairs: rows j = h + 2r and j + 8 = h + 2 (r + 4), r < 4
      int jj[4 * MT], mm[4 * MT];
      bool ok[4 * MT];
      float v0[4 * MT], v1[4 * MT];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          const int p = r * MT + m;
          jj[p] = h + 2 * r;
          mm[p] = m;
          ok[p] = c == 0 && m < M;
          v0[p] = acc[r][m];
          v1[p] = acc[r + 4][m];
        }
      if (stream_fixup<4 * MT>(a, tile, wid, seg == tile * NP && qe == (tile + 1) * NP, jj, mm, ok, v0, v1)) {
#pragma unroll
        for (int p = 0; p < 4 * MT; ++p)
          if (ok[p]) emit_rows(a, tile, jj[p], mm[p], v0[p], v1[p], 1.0f, false);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int m = 0; m < MT; ++m) acc[i][m] = 0.0f;
      seg = qe;
    }
  };
  for (int q = pbeg; q < pend; q += 2) {
    compute(bA, q);
    load(bA, q + 2);
    if (q + 1 >= pend) break;
    compute(bB, q + 1);
    load(bB, q + 3);
  }
  if (stamps) {  // block-uniform
    __syncthreads();
    if (tid == 0) stamps[3] = global_ns();
  }
}

// Blocks per multiprocessor of a kernel with this much dynamic shared memory (cached per kernel).
template <typename Kernel>
int blocks_per_sm(Kernel kernel, int smem_bytes) {
  static int cached_bytes = -1, cached_n = 0;
  if (cached_bytes != smem_bytes) {
    set_max_smem_once(kernel, smem_bytes);
    LB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&cached_n, kernel, kGemvThreads, smem_bytes));
    cached_bytes = smem_bytes;
  }
  return cached_n;
}

// Sizes the persistent grid (as many blocks as fit on `sms` multiprocessors, each warp an equal share of
// the packet stream) and launches the stream kernel of codec C. `a` has the shared-memory plan, np,
// xstride and gstride (gemv.cu). Returns false, launching nothing, when the shape needs more workspace
// than there is.
template <GpuCodec C>
bool launch_gemv_stream(GemvArgs a, int smem_bytes, int sms, cudaStream_t s) {
  auto run = [&](auto kernel) {
    const int bps = blocks_per_sm(kernel, smem_bytes);
    if (bps <= 0) return false;
    const int64_t tiles = a.w.rows_pad / 16, total = tiles * a.np;
    const int64_t max_warps = int64_t(sms) * bps * kGemvWarps;
    const int64_t per_warp = (total + max_warps - 1) / max_warps;
    const int64_t warps = (total + per_warp - 1) / per_warp;
    if (total >= (int64_t(1) << 30) || tiles > kStreamCounters || (tiles + warps) * 64 > kStreamWsFloats) return false;
    a.per_warp = int(per_warp);
    stream_workspace(&a.ws, &a.cnt);
    launch(kernel, unsigned((warps + kGemvWarps - 1) / kGemvWarps), kGemvThreads, size_t(smem_bytes), s, a);
    LB_CUDA_LAUNCH_CHECK();
    return true;
  };
  if constexpr (is_plain(C)) {
    return a.M == 1 ? run(gemv_stream_plain_kernel<C, 1>) : run(gemv_stream_plain_kernel<C, kStreamMaxTokens>);
  } else {
    return run(gemv_stream_mma_kernel<C>);
  }
}

// The explicit instantiations of codec c's kernels (gemv_<family>.cu).
#define LB_INSTANTIATE_GEMV(c)                                                                  \
  template void launch_gemv_codec<GpuCodec::c>(const GemvArgs&, unsigned, int, cudaStream_t); \
  template bool launch_gemv_stream<GpuCodec::c>(GemvArgs, int, int, cudaStream_t);

}  // namespace lowbit::cuda

// The GEMV kernel bodies (one template per family, instantiated per codec in gemv_<family>.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <map>
#include <utility>

#include "backend/cuda/check.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/gemv_decode.h"
#include "backend/cuda/warp.cuh"
#include "backend/cuda/launch.cuh"

namespace lowbit::cuda {

constexpr int kGemvThreads = 256;  // the largest block (8 warps); blocks have 32 * rt * ks threads
constexpr int kGemvWarps = kGemvThreads / 32;

// The stream kernels' blocks (gemv_stream.cuh): one of 16 warps per multiprocessor.
constexpr int kStreamThreads = 512;
constexpr int kStreamWarps = kStreamThreads / 32;

// GemvArgs::rest: when the stream kernels issue their weight batches after the `early` ones.
constexpr int kRestEarly = 0, kRestArrived = 1, kRestLate = 2, kRestReduced = 3;
// When a stream kernel lets the next kernel in the stream be scheduled (GemvArgs::trigger): right after
// pdl_wait(), once its x has arrived, or after staging x.
constexpr int kTriggerWait = 0, kTriggerArrived = 1, kTriggerStaged = 2;

// Everything a GEMV launch needs (passed by value).
struct GemvArgs {
  GpuWeightView w;
  const float* x = nullptr;      // [M, K]
  int M = 1;
  const float* norm_w = nullptr; // [K] or null
  float eps = 1e-5f;
  GemvOut kind = GemvOut::StoreF32;
  void* out = nullptr;
  int64_t ld = 0;
  int rt = 1, ks = 8;            // tiles per block, warps per tile
  int kt = 0;                    // K-tile: packets (MMA kernel) or columns (plain kernel)
  int xstride = 0;               // words per B array (MMA) / floats per token row (plain)
  int gstride = 0;               // floats per token of the unit sums (MMA, affine)
  int off_stats = 0, off_gsum = 0, off_x = 0, off_red = 0;  // shared-memory offsets in bytes
  // the stream kernels (gemv_stream.cuh)
  int np = 0;                    // packets per tile row (plain formats: 256-byte row pieces)
  int tiles_per_block = 0;       // each block takes a run of whole tiles ...
  int per_warp = 0;              // ... and each of its warps an equal share of their packets
  // > 0 (LOWBIT_GEMV_SPLIT=balanced): the tiles spread over this many blocks instead: the first split_extra
  // blocks split_base + 1 tiles (per_warp packets per warp), the others split_base (per_warp_lo)
  int split_blocks = 0, split_base = 0, split_extra = 0, per_warp_lo = 0;
  int off_pieces = 0;            // shared memory: partial sums of split tiles, then their counters
  int stages = 0;                // ring stages per warp (tensor-core formats; ring at off_red)
  int early = -1;                // weight batches issued before pdl_wait(), the rest after x's loads (-1: all)
  // when the batches after `early` are issued (LOWBIT_GEMV_REST): right after x's loads (kRestEarly),
  // once this warp's x has arrived (kRestArrived: x's loads do not queue behind them), after staging x
  // (kRestLate), or once the block has all of x (kRestReduced: after the block reduction, before converting)
  int rest = 0;                  // kRestEarly, kRestArrived, kRestLate, kRestReduced
  int norm_early = 1;            // the stream kernels load the norm weight before pdl_wait() (stage_w_issue)
  int trigger = 0;               // kTriggerWait, kTriggerArrived, kTriggerStaged
  int wait_one = 0;              // pdl_wait_block(wait_one): warp 0 waits, the others at a barrier (LOWBIT_PDL_WAIT)
  // > 1 (LOWBIT_GEMV_KSPLIT; the MMA stream kernel, one token, no norm, AddF32): K cut into ksplit equal
  // slices of np packets each (np_tile per tile row), split_blocks blocks per slice; block b takes slice
  // b / split_blocks, stages only that slice of x and adds its partial sums to the output atomically
  int ksplit = 1, np_tile = 0;
  int xk = 0;                    // columns of x a stream block stages: K, or a slice's (np * packet_cols)
  unsigned long long* timeline = nullptr;  // gemv_set_timeline(): kTimelineStamps per block, or null
  unsigned* progress = nullptr;  // gemv_set_progress(): block 0 adds 1 at entry (the L2 prefetcher's pacing)
};

// The stream kernels' entry: block 0 counts the launch for the L2 prefetcher (gemv_set_progress). A relaxed
// atomic: the prefetcher only paces on it, nothing is ordered by it.
__device__ __forceinline__ void note_progress(const GemvArgs& a) {
  if (a.progress && blockIdx.x == 0 && threadIdx.x == 0) atomicAdd(a.progress, 1u);
}


// Shared memory of the token statistics: rinv[8], xscale[8], yscale[8], warp partials [16 warps][8] x 2.
constexpr int kStatsBytes = (3 * 8 + 2 * 128) * 4;
constexpr int kT5LutBytes = 256 * 8 * 16;  // 8 copies of 256 16-byte entries

template <typename F, int... I>
__device__ __forceinline__ void static_for_impl(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, typename F>
__device__ __forceinline__ void static_for(F&& f) {
  static_for_impl(f, std::make_integer_sequence<int, N>{});
}

// Streaming 16-byte load: read once, keep it out of L1.
__device__ __forceinline__ uint4 ldg_stream(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

// d = a * b + c with a: 16x16 fp16 (row), b: 16x8 fp16 (col), c, d: fp32.
__device__ __forceinline__ void mma_16816(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}



// Raw x (and norm weight) of columns k, k+1 (k even) of token m: one 8-byte read-only load when the
// rows are 8-byte aligned, else two; zero beyond K.
__device__ __forceinline__ float2 load_pair(const float* base, int64_t K, bool aligned, int m, int64_t k) {
  const float* p = base + m * K + k;
  if (aligned && k + 1 < K) return __ldg(reinterpret_cast<const float2*>(p));
  return make_float2(k < K ? __ldg(p) : 0.0f, k + 1 < K ? __ldg(p + 1) : 0.0f);
}
__device__ __forceinline__ bool pairs_aligned(const GemvArgs& a) {
  return a.w.cols % 2 == 0 && (reinterpret_cast<uintptr_t>(a.x) & 7u) == 0 &&
         (!a.norm_w || (reinterpret_cast<uintptr_t>(a.norm_w) & 7u) == 0);
}

// Per token: rinv (RMSNorm factor or 1), xscale = 2^-e and yscale = 2^e with e chosen so that the scaled
// (normalized) x has max |x| in [2^13, 2^14): fp16 hi parts cannot overflow. Ends with __syncthreads().
__device__ __forceinline__ void token_stats(const GemvArgs& a, float* st, bool fp16_scale) {
  float* rinv = st;
  float* xscale = st + 8;
  float* yscale = st + 16;
  float* wss = st + 24;
  float* wam = st + 24 + 128;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t K = a.w.cols;
  const bool aligned = pairs_aligned(a);
  for (int m = 0; m < a.M; ++m) {
    float ss = 0.0f, am = 0.0f;
    // 4 independent pair loads per round: L2 latency is paid K / 2048 times, not K / 256
#pragma unroll 4
    for (int64_t k = 2 * tid; k < K; k += 2 * int64_t(blockDim.x)) {
      const float2 v = load_pair(a.x, K, aligned, m, k);
      ss = fmaf(v.x, v.x, fmaf(v.y, v.y, ss));
      if (a.norm_w) {
        const float2 w = load_pair(a.norm_w, K, aligned, 0, k);
        am = fmaxf(am, fmaxf(fabsf(v.x * w.x), fabsf(v.y * w.y)));
      } else {
        am = fmaxf(am, fmaxf(fabsf(v.x), fabsf(v.y)));
      }
    }
    ss = warp_sum(ss);
    am = warp_max(am);
    if (lane == 0) {
      wss[warp * 8 + m] = ss;
      wam[warp * 8 + m] = am;
    }
  }
  __syncthreads();
  if (tid < a.M) {
    float ss = 0.0f, am = 0.0f;
    for (int w = 0; w < int(blockDim.x >> 5); ++w) {
      ss += wss[w * 8 + tid];
      am = fmaxf(am, wam[w * 8 + tid]);
    }
    const float r = a.norm_w ? 1.0f / sqrtf(ss / float(K) + a.eps) : 1.0f;
    int e = 0;
    const float amax = am * r;
    if (fp16_scale && amax > 0.0f && amax <= 3.0e38f) e = ilogbf(amax) - 13;
    rinv[tid] = r;
    xscale[tid] = ldexpf(1.0f, -e);
    yscale[tid] = ldexpf(1.0f, e);
  }
  __syncthreads();
}

// The normalized x of columns k, k+1 (k even) of token m (0 beyond K).
__device__ __forceinline__ float2 x_normed_pair(const GemvArgs& a, const float* rinv, bool aligned, int m, int64_t k) {
  float2 v = load_pair(a.x, a.w.cols, aligned, m, k);
  if (a.norm_w) {
    const float2 w = load_pair(a.norm_w, a.w.cols, aligned, 0, k);
    v.x = v.x * rinv[m] * w.x;
    v.y = v.y * rinv[m] * w.y;
  }
  return v;
}

__device__ __forceinline__ void store_out(const GemvArgs& a, int m, int64_t n, float v) {
  const int64_t i = m * a.ld + n;
  switch (a.kind) {
    case GemvOut::StoreF32:
    case GemvOut::SwiGluF32: static_cast<float*>(a.out)[i] = v; break;
    case GemvOut::StoreBF16:
    case GemvOut::SwiGluBF16: static_cast<__nv_bfloat16*>(a.out)[i] = __float2bfloat16_rn(v); break;
    case GemvOut::AddF32: static_cast<float*>(a.out)[i] += v; break;
  }
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// Sums the per-warp partials red[rt][ks][16][M] of tile group `group` (tiles group * rt ..), applies factor * yscale[m] and the
// per-row value, and writes the epilogue. Needs the partials complete (after a __syncthreads()).
__device__ __forceinline__ void finish_block(const GemvArgs& a, const float* red, const float* yscale, float factor,
                                             bool divide, int64_t group) {
  const int per_tile = a.w.glu ? 8 : 16;
  const int total = a.rt * per_tile * a.M;
  const int64_t n_tiles = a.w.rows_pad / 16;
  for (int i = threadIdx.x; i < total; i += blockDim.x) {
    const int tl = i / (per_tile * a.M), rem = i % (per_tile * a.M), j = rem / a.M, m = rem % a.M;
    const int64_t tile = group * a.rt + tl;
    if (tile >= n_tiles) continue;
    auto row_value = [&](int row) {
      float s = 0.0f;
      for (int q = 0; q < a.ks; ++q) s += red[((tl * a.ks + q) * 16 + row) * a.M + m];
      float y = s * factor * yscale[m];
      if (a.w.row_scale) {
        const float rs = a.w.row_scale[tile * 16 + row];
        y = divide ? y / rs : y * rs;
      }
      return y;
    };
    if (a.w.glu) {
      const int64_t n = tile * 8 + j;
      if (n >= a.w.ff) continue;
      store_out(a, m, n, silu(row_value(j)) * row_value(j + 8));
    } else {
      const int64_t n = tile * 16 + j;
      if (n >= a.w.rows) continue;
      store_out(a, m, n, row_value(j));
    }
  }
}

// Packets loaded per batch (bytes in flight per lane: 16 * PW * U), as many as registers allow without
// spills (ptxas_report.sh): 128 B per lane for the 8-bit and fp4 codecs, less where the scales of a packet
// or its decoded k-steps take registers.
template <GpuCodec C>
constexpr int unroll_for() {
  constexpr CodecInfo ci = codec_info(C);
  if (ci.pw == 3) return 2;                                             // fp6: 96 B
  if (ci.pks >= 16) return 2;                                           // int1: 8 scale units per packet
  if (ci.pks <= 4 && ci.scale != ScaleKind::Affine) return 8;           // 8-bit, fp4
  if (ci.pks <= 4 || C == GpuCodec::T2) return 6;                       // int4, ternary
  return 4;                                                             // int2, ternary-1.6
}

// The codes of packet q of the stream (= tile * n_packets + kp) and the scales a lane needs for them.
template <GpuCodec C>
__device__ __forceinline__ void load_packet(const GpuWeightView& w, int64_t q, int64_t tile, int64_t kp, int lane,
                                            int gshift, int64_t n_units, uint32_t* words, uint32_t (*sc)[2]) {
  constexpr CodecInfo ci = codec_info(C);
  constexpr int PKS = ci.pks, PW = ci.pw;
  constexpr ScaleKind SK = ci.scale;
  const uint4* codes4 = reinterpret_cast<const uint4*>(w.codes);
  const int g = lane >> 2;
#pragma unroll
  for (int j = 0; j < PW; ++j) {
    const uint4 v = ldg_stream(codes4 + (q * PW + j) * 32 + lane);
    words[4 * j] = v.x;
    words[4 * j + 1] = v.y;
    words[4 * j + 2] = v.z;
    words[4 * j + 3] = v.w;
  }
  if constexpr (SK == ScaleKind::Affine || SK == ScaleKind::Mx || SK == ScaleKind::Nv) {
#pragma unroll
    for (int u = 0; u < PKS / 2; ++u) {
      const int64_t unit = kp * PKS / 2 + u;  // 32-column unit along K
      if constexpr (SK == ScaleKind::Affine) {
        const uint2 v = __ldg(reinterpret_cast<const uint2*>(w.scales) + (tile * n_units + (unit >> gshift)) * 8 + g);
        sc[u][0] = v.x;
        sc[u][1] = v.y;
      } else if constexpr (SK == ScaleKind::Mx) {
        sc[u][0] = __ldg(reinterpret_cast<const unsigned short*>(w.scales) + (tile * n_units + unit) * 8 + g);
      } else {
        sc[u][0] = __ldg(reinterpret_cast<const uint32_t*>(w.scales) + (tile * n_units + unit) * 8 + g);
      }
    }
  }
}

// Group-affine weights in the stream kernel: the MMA products of a whole group (group / 32 scale units) are
// accumulated before its scale and offset are applied, once per group instead of once per 32 columns.
// D: the open group's products (rows g, g+8 x columns 2t, 2t+1) of even and odd k-steps (two chains of
// MMAs, half the latency); gs: the sum of x over its units so far; sc: the group's (s, m) words of rows
// g, g+8; gmask = units per group - 1.
struct AffineRun {
  float D[2][4];
  float gs;
  uint32_t sc[2];
  int gmask;
};

// Applies the open group's scale and offset to accY and empties the run (a run with no products adds zeros).
__device__ __forceinline__ void affine_fold(AffineRun& r, float (*accY)[2]) {
  float f0, f1, m0, m1;
  affine_entry(r.sc[0], &f0, &m0);
  affine_entry(r.sc[1], &f1, &m1);
  accY[0][0] = fmaf(f0, (r.D[0][0] + r.D[0][1]) + (r.D[1][0] + r.D[1][1]), fmaf(m0, r.gs, accY[0][0]));
  accY[0][1] = fmaf(f1, (r.D[0][2] + r.D[0][3]) + (r.D[1][2] + r.D[1][3]), fmaf(m1, r.gs, accY[0][1]));
#pragma unroll
  for (int i = 0; i < 4; ++i) r.D[0][i] = r.D[1][i] = 0.0f;
  r.gs = 0.0f;
}

// One packet through the tensor cores: decode its k-steps (from `words`, scales `sc`) into A fragments,
// multiply with the staged x (k-step lbase + S of the staged K-tile) and fold the scales. NB B-operands
// of 8 columns: 4 tokens (hi, lo) each. Row scale: accC runs over the whole row; scale units (groups, MX
// blocks, NVFP4 blocks): each unit's product is folded into accY with its scales, or, with an AffineRun
// (group-affine formats, NB = 1), each group's.
// Lanes whose B columns belong to no token (token >= M) read the last token's x instead of zeros: their
// columns of the product are never read, and the loads need no predicate.
template <GpuCodec C, int NB>
__device__ __forceinline__ void mma_packet(const uint32_t* words, const uint32_t (*sc)[2], int lbase, const uint32_t* xb,
                                           int xstride, const float* gsum, int gstride, int M, const uint4* lut,
                                           int lane, float (*accC)[4], float (*accY)[2], AffineRun* run = nullptr) {
  constexpr CodecInfo ci = codec_info(C);
  constexpr int PKS = ci.pks;
  constexpr ScaleKind SK = ci.scale;
  constexpr bool kUnits = SK == ScaleKind::Affine || SK == ScaleKind::Mx;  // scale per 32 columns
  const int g = lane >> 2, t = lane & 3;
  uint32_t A[PKS][4];
  if constexpr (C == GpuCodec::T5) {
    const uint4* my_lut = lut + (lane & 7);
    decode_t5_packet(words, A, [my_lut](uint32_t v) {
      const uint4 e = my_lut[v * 8];
      return T5Entry{e.x, e.y, e.z, e.w};
    });
  }
  float D[NB][4];
  static_for<PKS>([&](auto S_) {
    constexpr int S = decltype(S_)::value;
    if constexpr (C != GpuCodec::T5) decode_kstep<C, S>(words, A[S]);
    uint32_t b[NB][2];
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      const int arr = min(8 * nb + g, 2 * M - 1);  // token arr / 2, hi (even) or lo (odd) part
      const uint2 v = *reinterpret_cast<const uint2*>(xb + arr * xstride + b_frag_word(lbase + S, t));
      b[nb][0] = v.x;
      b[nb][1] = v.y;
    }
    if constexpr (SK == ScaleKind::Row) {
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) mma_16816(accC[nb], A[S], b[nb], accC[nb]);
    } else if (SK == ScaleKind::Affine && run != nullptr) {
      mma_16816(run->D[S % 2], A[S], b[0], run->D[S % 2]);
      if (S % 2 == 1) {
        const int unit = (lbase >> 1) + S / 2;  // lbase is even
        run->gs += gsum[min(t, M - 1) * gstride + unit];
        run->sc[0] = sc[S / 2][0];
        run->sc[1] = sc[S / 2][1];
        if ((unit & run->gmask) == run->gmask) affine_fold(*run, accY);
      }
    } else {
      constexpr float kZero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) mma_16816(D[nb], A[S], b[nb], (kUnits && S % 2 == 1) ? D[nb] : kZero);
      if (!kUnits || S % 2 == 1) {
        float f0, f1, m0 = 0.0f, m1 = 0.0f;
        if constexpr (SK == ScaleKind::Affine) {
          affine_entry(sc[S / 2][0], &f0, &m0);
          affine_entry(sc[S / 2][1], &f1, &m1);
        } else if constexpr (SK == ScaleKind::Mx) {
          f0 = e8m0_value(sc[S / 2][0] & 0xffu);
          f1 = e8m0_value(sc[S / 2][0] >> 8);
        } else {  // Nv: E4M3 block scales of rows g, g+8 for block S % 2 of the unit
          nv_scales(sc[S / 2][0] >> (16 * (S % 2)), &f0, &f1);
        }
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          float gs = 0.0f;
          if constexpr (SK == ScaleKind::Affine) gs = gsum[min(4 * nb + t, M - 1) * gstride + (lbase >> 1) + S / 2];
          accY[nb][0] = fmaf(f0, D[nb][0] + D[nb][1], fmaf(m0, gs, accY[nb][0]));
          accY[nb][1] = fmaf(f1, D[nb][2] + D[nb][3], fmaf(m1, gs, accY[nb][1]));
        }
      }
    }
  });
}

// Stages x of the K-tile starting at packet tp0 (np packets) for the tensor cores: per token the
// normalized, 2^-e scaled x as fp16 hi / lo in B-fragment order, and for group-affine formats the sums
// of each 32-column unit. The caller synchronizes before and after.
template <GpuCodec C>
__device__ __forceinline__ void stage_x_mma(const GemvArgs& a, const float* rinv, const float* xscale, uint32_t* xb,
                                            float* gsum, int64_t tp0, int np) {
  constexpr CodecInfo ci = codec_info(C);
  const int tid = threadIdx.x;
  const int kt_cols = np * ci.pks * 16, half_cols = kt_cols / 2;
  const int64_t c0 = tp0 * ci.pks * 16;
  const int total = a.M * half_cols;
  const bool aligned = pairs_aligned(a);
#pragma unroll 4
  for (int i = tid; i < total; i += blockDim.x) {
    const int m = i / half_cols, kk = 2 * (i - m * half_cols);
    const float2 xv = x_normed_pair(a, rinv, aligned, m, c0 + kk);
    const float v0 = xv.x * xscale[m], v1 = xv.y * xscale[m];
    const __half h0 = __float2half_rn(v0), h1 = __float2half_rn(v1);
    const __half l0 = __float2half_rn(v0 - __half2float(h0)), l1 = __float2half_rn(v1 - __half2float(h1));
    const int widx = b_pair_word(kk);
    xb[(2 * m) * a.xstride + widx] = uint32_t(__half_as_ushort(h0)) | uint32_t(__half_as_ushort(h1)) << 16;
    xb[(2 * m + 1) * a.xstride + widx] = uint32_t(__half_as_ushort(l0)) | uint32_t(__half_as_ushort(l1)) << 16;
    if constexpr (ci.scale == ScaleKind::Affine) {
      // 16 consecutive lanes hold the 32 columns of one unit (kt_cols is a multiple of 64)
      float su = v0 + v1;
      su += __shfl_xor_sync(0xffffffffu, su, 8);
      su += __shfl_xor_sync(0xffffffffu, su, 4);
      su += __shfl_xor_sync(0xffffffffu, su, 2);
      su += __shfl_xor_sync(0xffffffffu, su, 1);
      if ((tid & 15) == 0) gsum[m * a.gstride + kk / 32] = su;
    }
  }
}

// Stages the normalized x of columns c0 .. c0 + kt_cols (kt_cols even; zeros beyond K) as fp32.
__device__ __forceinline__ void stage_x_plain(const GemvArgs& a, const float* rinv, float* xs, int64_t c0, int kt_cols) {
  const bool aligned = pairs_aligned(a);
  const int half_cols = kt_cols / 2;
#pragma unroll 4
  for (int i = threadIdx.x; i < a.M * half_cols; i += blockDim.x) {
    const int m = i / half_cols, kk = 2 * (i - m * half_cols);
    const float2 v = x_normed_pair(a, rinv, aligned, m, c0 + kk);
    *reinterpret_cast<float2*>(xs + m * a.xstride + kk) = v;
  }
}

// ---- the tensor-core kernel ----------------------------------------------------------------------------

template <GpuCodec C, int NB>
__global__ void __launch_bounds__(kGemvThreads, 2) gemv_mma_kernel(const GemvArgs a) {
  constexpr CodecInfo ci = codec_info(C);
  constexpr int PKS = ci.pks, PW = ci.pw, U = unroll_for<C>();
  constexpr ScaleKind SK = ci.scale;
  extern __shared__ __align__(16) uint8_t smem[];
  float* st = reinterpret_cast<float*>(smem + a.off_stats);
  float* gsum = reinterpret_cast<float*>(smem + a.off_gsum);
  uint32_t* xb = reinterpret_cast<uint32_t*>(smem + a.off_x);
  float* red = reinterpret_cast<float*>(smem + a.off_red);
  const uint4* lut = reinterpret_cast<const uint4*>(smem);  // T5 only: at offset 0
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;

  const int M = a.M;
  const int tl = warp / a.ks, kslice = warp - tl * a.ks;
  const int64_t NP = a.w.n_packets;
  const int64_t n_tiles = a.w.rows_pad / 16, n_groups = (n_tiles + a.rt - 1) / a.rt;
  // Tile groups (a.rt tiles) go round-robin over the blocks; with gridDim.x == n_groups each block has one.
  int64_t group = blockIdx.x;
  int64_t tile = group * a.rt + tl;
  bool valid = tile < n_tiles;
  const int64_t n_units = a.w.scale_units(SK);
  const int gshift = SK == ScaleKind::Affine ? __ffs(a.w.group >> 5) - 1 : 0;  // group = 32 << gshift
  const bool one_ktile = a.kt >= NP;  // x is staged once and serves every tile group of the block

  // One batch of packets (codes and their scales) in registers: all loads issued before any use.
  uint32_t words[U][4 * PW];
  uint32_t sc[U][PKS / 2 > 0 ? PKS / 2 : 1][2];
  auto load_batch = [&](int64_t p, int64_t pe) {
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (p + u < pe) load_packet<C>(a.w, tile * NP + p + u, tile, p + u, lane, gshift, n_units, words[u], sc[u]);
  };
  // The first batch of the current `tile` (K-tile 0) does not depend on x: loaded ahead of the prologue,
  // and ahead of each group's epilogue for the next group.
  bool preloaded = false;
  auto preload_first = [&]() {
    preloaded = false;
    if (!valid) return;
    const int64_t np0 = min(int64_t(a.kt), NP);
    const int64_t pb0 = int64_t(kslice) * np0 / a.ks, pe0 = int64_t(kslice + 1) * np0 / a.ks;
    if (pb0 < pe0) {
      load_batch(pb0, pe0);
      preloaded = true;
    }
  };
  preload_first();

  // Programmatic dependent launch (launch.cuh): the weight loads above overlap the previous kernel's
  // tail; x, the outputs and the residual are touched only after this point.
  pdl_wait();
  pdl_trigger();

  if constexpr (C == GpuCodec::T5) {
    uint4* l = reinterpret_cast<uint4*>(smem);
    for (int i = tid; i < 256 * 8; i += blockDim.x) {
      const T5Entry e = t5_entry(uint32_t(i / 8));
      l[i] = make_uint4(e.p01, e.p23, e.p4, 0u);
    }
  }
  token_stats(a, st, true);
  const float* rinv = st;
  const float* xscale = st + 8;
  bool staged = false;

  for (; group < n_groups; group += gridDim.x) {
    tile = group * a.rt + tl;
    valid = tile < n_tiles;
    float accC[NB][4];  // Row scale: the running MMA accumulators
    float accY[NB][2];  // per-unit scaled sums: rows g, g+8 of token 4 nb + t
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      accY[nb][0] = accY[nb][1] = 0.0f;
      accC[nb][0] = accC[nb][1] = accC[nb][2] = accC[nb][3] = 0.0f;
    }

    for (int64_t tp0 = 0; tp0 < NP; tp0 += a.kt) {
      const int np = int(min(int64_t(a.kt), NP - tp0));  // packets in this K-tile
      if (!(one_ktile && staged)) {
        __syncthreads();  // everyone is done with the previous K-tile's x
        stage_x_mma<C>(a, rinv, xscale, xb, gsum, tp0, np);
        __syncthreads();
        staged = true;
      }
      if (!valid) continue;
      const int64_t pb = tp0 + int64_t(kslice) * np / a.ks, pe = tp0 + int64_t(kslice + 1) * np / a.ks;
      for (int64_t p = pb; p < pe; p += U) {
        if (!preloaded) load_batch(p, pe);
        preloaded = false;
#pragma unroll
        for (int u = 0; u < U; ++u) {
          if (p + u >= pe) continue;
          mma_packet<C, NB>(words[u], sc[u], int(p + u - tp0) * PKS, xb, a.xstride, gsum, a.gstride, M, lut, lane,
                            accC, accY);
        }
      }
    }

    // the next group's first batch flies while this group's partials are reduced and stored
    if (group + gridDim.x < n_groups) {
      const bool valid_now = valid;
      tile = (group + gridDim.x) * a.rt + tl;
      valid = tile < n_tiles;
      preload_first();
      valid = valid_now;
    }

    // ---- per-warp partials -> shared memory -> epilogue
    if (valid) {
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        const int tok = 4 * nb + t;
        if (tok < M) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float v = SK == ScaleKind::Row ? accC[nb][2 * h] + accC[nb][2 * h + 1] : accY[nb][h];
            red[((tl * a.ks + kslice) * 16 + g + 8 * h) * M + tok] = v;
          }
        }
      }
    }
    __syncthreads();
    finish_block(a, red, st + 16, ci.factor, SK == ScaleKind::Nv, group);
    __syncthreads();  // red is written again by the next group
  }
}

// ---- the scalar kernel for f32 / bf16 / fp16 weights ------------------------------------------------------

template <GpuCodec C>
__device__ __forceinline__ void plain_decode(const uint4& q, float* w) {
  if constexpr (C == GpuCodec::PlainF32) {
    w[0] = __uint_as_float(q.x);
    w[1] = __uint_as_float(q.y);
    w[2] = __uint_as_float(q.z);
    w[3] = __uint_as_float(q.w);
  } else {
    const uint32_t v[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (C == GpuCodec::PlainBF16) {
        w[2 * i] = __uint_as_float(v[i] << 16);  // bf16 is the top half of an fp32
        w[2 * i + 1] = __uint_as_float(v[i] & 0xffff0000u);
      } else {
        const __half2 h = *reinterpret_cast<const __half2*>(&v[i]);
        const float2 f = __half22float2(h);
        w[2 * i] = f.x;
        w[2 * i + 1] = f.y;
      }
    }
  }
}

// MT: the most tokens (4 or 8): sizes the accumulators, which with the loads bound the registers.
template <GpuCodec C, int MT>
__global__ void __launch_bounds__(kGemvThreads, 2) gemv_plain_kernel(const GemvArgs a) {
  constexpr int EPC = 16 / codec_info(C).esize;  // elements per 16-byte chunk
  constexpr int U = MT > 4 ? 1 : 2;              // chunks per row in flight per lane
  extern __shared__ __align__(16) uint8_t smem[];
  float* st = reinterpret_cast<float*>(smem + a.off_stats);
  float* xs = reinterpret_cast<float*>(smem + a.off_x);
  float* red = reinterpret_cast<float*>(smem + a.off_red);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int M = a.M;
  const int tl = warp / a.ks, kslice = warp - tl * a.ks;
  const int64_t n_tiles = a.w.rows_pad / 16, n_groups = (n_tiles + a.rt - 1) / a.rt;
  const int64_t chunks_row = a.w.row_stride / 16;
  const bool one_ktile = a.kt >= chunks_row * EPC;

  pdl_wait();  // see launch.cuh
  pdl_trigger();
  token_stats(a, st, false);
  const float* rinv = st;
  bool staged = false;

  for (int64_t group = blockIdx.x; group < n_groups; group += gridDim.x) {
    const int64_t tile = group * a.rt + tl;
    const bool valid = tile < n_tiles;
    for (int i = tid; i < a.rt * a.ks * 16 * M; i += blockDim.x) red[i] = 0.0f;
    for (int64_t c0 = 0; c0 < chunks_row * EPC; c0 += a.kt) {
      const int kt_cols = int(min(int64_t(a.kt), chunks_row * EPC - c0));
      __syncthreads();  // red is zeroed; the previous K-tile's x is no longer read
      if (!(one_ktile && staged)) {
        stage_x_plain(a, rinv, xs, c0, kt_cols);
        __syncthreads();
        staged = true;
      }
      if (!valid) continue;
      const int nch = kt_cols / EPC;
      const int cb = kslice * nch / a.ks, ce = (kslice + 1) * nch / a.ks;
      const int64_t chunk0 = c0 / EPC;
      for (int rq = 0; rq < 4; ++rq) {
        float acc[4][MT];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int m = 0; m < MT; ++m) acc[r][m] = 0.0f;
        const uint8_t* row0 = a.w.codes + (tile * 16 + 4 * rq) * a.w.row_stride;
        for (int c = cb + lane; c < ce; c += 32 * U) {
          uint4 q[U][4];
#pragma unroll
          for (int u = 0; u < U; ++u)
#pragma unroll
            for (int r = 0; r < 4; ++r)
              if (c + 32 * u < ce)
                q[u][r] = ldg_stream(reinterpret_cast<const uint4*>(row0 + r * a.w.row_stride) + chunk0 + c + 32 * u);
#pragma unroll
          for (int u = 0; u < U; ++u) {
            if (c + 32 * u >= ce) continue;
            float wv[4][EPC];
#pragma unroll
            for (int r = 0; r < 4; ++r) plain_decode<C>(q[u][r], wv[r]);
#pragma unroll
            for (int m = 0; m < MT; ++m) {
              if (m >= M) break;
              const float4* xp = reinterpret_cast<const float4*>(xs + m * a.xstride + (c + 32 * u) * EPC);
#pragma unroll
              for (int e4 = 0; e4 < EPC / 4; ++e4) {
                const float4 xv = xp[e4];
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                  acc[r][m] = fmaf(wv[r][4 * e4], xv.x, acc[r][m]);
                  acc[r][m] = fmaf(wv[r][4 * e4 + 1], xv.y, acc[r][m]);
                  acc[r][m] = fmaf(wv[r][4 * e4 + 2], xv.z, acc[r][m]);
                  acc[r][m] = fmaf(wv[r][4 * e4 + 3], xv.w, acc[r][m]);
                }
              }
            }
          }
        }
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            if (m >= M) break;
            const float v = warp_sum(acc[r][m]);
            if (lane == 0) red[((tl * a.ks + kslice) * 16 + 4 * rq + r) * M + m] += v;
          }
      }
    }
    __syncthreads();
    finish_block(a, red, st + 16, 1.0f, false, group);
    __syncthreads();  // red is zeroed again by the next group
  }
}

// ---- the reference kernel: one warp per output, element by element ----------------------------------------

__global__ void __launch_bounds__(kGemvThreads) gemv_reference_kernel(const GemvArgs a);

// ---- launch -----------------------------------------------------------------------------------------------

// Launches the kernel of codec C with a.M tokens, 32 * a.rt * a.ks threads per block (args and shared
// memory planned by gemv.cu).
template <GpuCodec C>
void launch_gemv_codec(const GemvArgs& a, unsigned grid, int smem_bytes, cudaStream_t s);

// Raises a kernel's dynamic shared-memory limit to `bytes` when it is lower (one attribute call per kernel
// and new maximum; legal during stream capture). Every GEMV kernel has the same type, so the record is
// keyed by the kernel's address.
inline void raise_smem_limit(void (*kernel)(GemvArgs), int bytes) {
  static std::map<const void*, int> limit;
  int& l = limit[reinterpret_cast<const void*>(kernel)];
  if (bytes > l) {
    LB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    l = bytes;
  }
}

template <GpuCodec C>
void launch_gemv_codec(const GemvArgs& a, unsigned grid, int smem_bytes, cudaStream_t s) {
  void (*kernel)(GemvArgs);
  if constexpr (is_plain(C)) kernel = a.M <= 4 ? gemv_plain_kernel<C, 4> : gemv_plain_kernel<C, 8>;
  else kernel = a.M <= 4 ? gemv_mma_kernel<C, 1> : gemv_mma_kernel<C, 2>;
  raise_smem_limit(kernel, smem_bytes);
  launch(kernel, grid, unsigned(32 * a.rt * a.ks), size_t(smem_bytes), s, a);
  LB_CUDA_LAUNCH_CHECK();
}

}  // namespace lowbit::cuda

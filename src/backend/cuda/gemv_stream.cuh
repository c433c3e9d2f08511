// The stream GEMV kernels (variant `stream`, the default; gemv() runs more tokens in passes of up to 4): the
// weight is one stream of packets in tile order (tile = 16 rows; packet = one warp's 16-byte loads, see
// weights_layout.h). One block per multiprocessor takes a run of whole tiles (as many as the GPU has
// multiprocessors, rounded up), and each of its warps an equal contiguous share of their packets, so that
// every multiprocessor reads about the same number of bytes whatever the shape (stream-K inside a block).
//
//  * x is normalized and staged once per block for the whole row (fp16 hi / lo or integer limbs for the
//    tensor cores, fp32 for the scalar kernel), for one token in a single pass: every thread loads its
//    float4s of x at once, one block reduction gives the RMSNorm factor and the scaling, and each thread
//    converts what it loaded (stage_x_one_pass).
//  * the first weight loads are issued ahead of pdl_wait() (a.early batches: they overlap the previous
//    kernel's tail where its blocks leave early), the rest of the first stages right after x's loads.
//    Tensor-core formats: each warp streams its share through a ring of S stages in shared memory with
//    cp.async (S - 1 stages in flight while one is computed; no registers held by loads);
//    f32 / bf16 / fp16: loads double-buffered in registers (their compute is light).
//  * a tile whose packets are split between warps (of one block, by construction) is finished by the warp
//    that completes it last: each piece stores its 16 row sums in shared memory and bumps the tile's
//    counter there (no global memory round trips), and the last one adds the pieces in a fixed order
//    (deterministic) and runs the epilogue.
#pragma once

#include <map>
#include <type_traits>

#include "backend/cuda/async_copy.cuh"
#include "backend/cuda/gemv_kernels.cuh"

// 0 (default; CMake -DLOWBIT_GEMV_AB_KNOBS=OFF): the stream MMA kernel has the defaults of its placement knobs
// (LOWBIT_GEMV_REST, _TRIGGER, LOWBIT_PDL_WAIT) compiled in, the knobs apply to the plain kernels only; 1 (ON):
// it reads them at run time, for A/B runs (~1,100 more SASS instructions: measured 0.9-1.3 % slower, the
// instruction cache; docs/cuda-kernels.md).
#ifndef LOWBIT_GEMV_AB_KNOBS
#define LOWBIT_GEMV_AB_KNOBS 0
#endif

namespace lowbit::cuda {

constexpr int kStreamMaxTokens = 4;
constexpr int kStageChunks = 8;      // float4s of x per thread in the one-pass staging: K <= 16384
constexpr int kStageChunksSmall = 2; // the plain kernel's variant for K <= 4096 (registers for a 2nd packet)

// Packets per batch (stage): about 2 KB of codes per warp.
LB_HD constexpr int stream_unroll(GpuCodec c) {
  return codec_info(c).pw == 3 ? 1      // fp6: 1.5 KB per packet
         : codec_info(c).pks >= 16 ? 1  // int1: 8 scale units per packet
         : codec_info(c).pks >= 8 ? 2   // int2, ternary
                                  : 4;  // 8-bit, int4, fp4
}
// Bytes of one 32-column scale unit of a tile in the scale stream (8 lanes' entries): group-affine bf16
// (s, m) x rows g, g+8; MX one E8M0 x 2 rows; NVFP4 two E4M3 blocks x 2 rows.
LB_HD constexpr int scale_unit_bytes(GpuCodec c) {
  return codec_info(c).scale == ScaleKind::Affine ? 64
         : codec_info(c).scale == ScaleKind::Mx   ? 16
         : codec_info(c).scale == ScaleKind::Nv   ? 32
                                                  : 0;
}
// Bytes of one packet in the weight stream: its codes and its share of the scale units.
LB_HD constexpr int packet_bytes(GpuCodec c) {
  return codec_info(c).pw * 512 + codec_info(c).pks / 2 * scale_unit_bytes(c);
}
// Bytes of one ring stage of a warp: the codes of U packets, then their scale units.
LB_HD constexpr int stage_bytes(GpuCodec c) { return stream_unroll(c) * packet_bytes(c); }

// Whether stage_x_one_pass applies: one token, K a multiple of 4 within the per-thread budget, 16-byte
// aligned x and norm weight (otherwise token_stats + stage_x_* do it in two passes).
template <int NCH = kStageChunks>
__device__ __forceinline__ bool one_pass_ok(const GemvArgs& a) {
  return a.M == 1 && (a.w.cols & 3) == 0 && a.w.cols <= int64_t(4 * NCH) * blockDim.x &&
         (reinterpret_cast<uintptr_t>(a.x) & 15u) == 0 && (reinterpret_cast<uintptr_t>(a.norm_w) & 15u) == 0;
}

// The loads of the one-pass staging: this thread's float4s of x and of the norm weight, issued together
// (the caller may issue other loads before it uses them). NCH float4s of each per thread.
template <int NCH = kStageChunks>
struct XLoads {
  float4 x[NCH], w[NCH];
};
// kNorm false: the caller knows there is no norm weight (a.norm_w null); w stays ones, in no registers.
// The norm weight's loads (stage_w_issue) do not depend on the previous kernel: with a.norm_early they are
// issued before pdl_wait() (the weight is not in L2 at a layer's start: read after pdl_wait(), the miss had
// delayed x's staging), then stage_x_issue(a, v, false) issues x's.
template <int NCH, bool kNorm = true>
__device__ __forceinline__ void stage_w_issue(const GemvArgs& a, XLoads<NCH>& v) {
  const int tid = threadIdx.x, nthr = blockDim.x, nchunk = int(a.w.cols) / 4;  // (no norm with K slices)
  const float4* w4 = reinterpret_cast<const float4*>(a.norm_w);
#pragma unroll
  for (int i = 0; i < NCH; ++i) {
    const int c = tid + i * nthr;
    v.w[i] = kNorm && a.norm_w && c < nchunk ? __ldg(w4 + c) : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
  }
}
// The columns [col0, col0 + a.xk) (a.xk: K, or a K slice's columns).
template <int NCH, bool kNorm = true>
__device__ __forceinline__ void stage_x_issue(const GemvArgs& a, XLoads<NCH>& v, bool with_w = true, int col0 = 0) {
  const int tid = threadIdx.x, nthr = blockDim.x, nchunk = a.xk / 4;
  const float4* x4 = reinterpret_cast<const float4*>(a.x + col0);
#pragma unroll
  for (int i = 0; i < NCH; ++i) {
    const int c = tid + i * nthr;
    v.x[i] = c < nchunk ? __ldg(x4 + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  if (with_w) stage_w_issue<NCH, kNorm>(a, v);
}

// Stages the one token's x for the whole row in one pass (see the top of this file; loads from
// stage_x_issue) with the same arithmetic as token_stats + stage_x_mma / stage_x_plain: the RMSNorm factor
// and 2^-e (tensor cores) into st, then x * rinv * w * 2^-e as fp16 hi / lo in B-fragment order (+ 32-column
// sums for group-affine formats), or as fp32 up to `cols` columns (zeros beyond K). Ends with __syncthreads().
// kLimbCodec (an integer codec, has_imma): x as 4 int8 limbs at imma_x_offset instead of fp16 hi / lo (xb
// then points to the bytes), scaled by 2^-e with |x| 2^-e < 64.
// stamps (the timeline, or null): [4] when thread 0's loads of x have arrived, [5] after the block reduction.
// on_arrival() runs in every thread once its loads of x have arrived (before the block reduction);
// on_reduced() once the whole block's have (after the block reduction, before the conversion; where there
// is no reduction, right after on_arrival()).
// K slices (a.xk < K: no norm weight, tensor cores): the loads were of columns [col0, col0 + a.xk); max|x|
// and 2^-e are those of the slice, which is staged at its own columns (col0 a multiple of 256: the store
// positions and unit sums are those of column 0 shifted by whole 64-column periods) and `cols` = a.xk (no
// padding inside a slice).
__device__ __forceinline__ uint32_t bits_u32(__half2 h) {
  uint32_t u;
  memcpy(&u, &h, sizeof u);
  return u;
}
struct NoOp {
  __device__ void operator()() const {}
};
// kNormW false: no norm weight (a.norm_w null; ld.w holds ones): no products with it.
template <bool kMma, bool kAffine, GpuCodec kLimbCodec = GpuCodec::PlainF32, int NCH = kStageChunks,
          bool kNormW = true, typename OnArrival = NoOp, typename OnReduced = NoOp>
__device__ __forceinline__ void stage_x_one_pass(const GemvArgs& a, const XLoads<NCH>& ld, float* st, uint32_t* xb,
                                                 float* xs, float* gsum, int cols,
                                                 unsigned long long* stamps = nullptr,
                                                 OnArrival on_arrival = NoOp{}, OnReduced on_reduced = NoOp{},
                                                 int col0 = 0) {
  constexpr bool kLimbs = has_imma(kLimbCodec);
  uint8_t* xl = reinterpret_cast<uint8_t*>(xb);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nthr = blockDim.x;
  const int K = a.xk, nchunk = K / 4;  // (the whole row but with K slices)
  const float4* xv = ld.x;
  const float4* wv = ld.w;
  const auto wmul = [](float x, float w) { return kNormW ? x * w : x; };  // x * 1 = x
  float ss = 0.0f, am = 0.0f;
#pragma unroll
  for (int i = 0; i < NCH; ++i) {
    ss = fmaf(xv[i].x, xv[i].x, fmaf(xv[i].y, xv[i].y, fmaf(xv[i].z, xv[i].z, fmaf(xv[i].w, xv[i].w, ss))));
    am = fmaxf(am, fmaxf(fmaxf(fabsf(wmul(xv[i].x, wv[i].x)), fabsf(wmul(xv[i].y, wv[i].y))),
                         fmaxf(fabsf(wmul(xv[i].z, wv[i].z)), fabsf(wmul(xv[i].w, wv[i].w)))));
  }
  if (stamps && tid == 0 && !(ss < 0.0f)) stamps[4] = global_ns();  // (the condition waits for the loads)
  on_arrival();  // (ss and am hold every loaded value: the loads have arrived)
  // fp32 x without a norm weight (the plain kernels' o / down) needs neither Σx² nor max|x|: no block
  // reduction, no barrier before the conversion
  if (kMma || a.norm_w) {
    float* red = st + 24;  // token_stats' warp partials
    ss = warp_sum(ss);
    am = warp_max(am);
    if (stamps && lane == 0 && !(ss < 0.0f)) atomicMax(stamps + 8, global_ns());  // x is in
    if (lane == 0) {
      red[warp] = ss;
      red[64 + warp] = am;
    }
    __syncthreads();
    ss = 0.0f;
    am = 0.0f;
    for (int w = 0; w < (nthr >> 5); ++w) {
      ss += red[w];
      am = fmaxf(am, red[64 + w]);
    }
  }
  on_reduced();
  if (stamps && tid == 0 && !(ss < 0.0f)) stamps[5] = global_ns();
  const float r = a.norm_w ? 1.0f / sqrtf(ss / float(K) + a.eps) : 1.0f;
  int e = 0;
  const float amax = am * r;
  if (kMma && amax > 0.0f && amax <= 3.0e38f) e = ilogbf(amax) - (kLimbs ? 5 : 13);
  const float xscale = ldexpf(1.0f, -e);
  if (tid == 0) {
    st[0] = r;
    st[8] = xscale;
    st[16] = ldexpf(1.0f, e);
  }
  // The conversion is issue-bound (every block converts all of x; down: 28 columns per thread), so it is
  // written for few instructions per column with the same roundings as x * r * w * 2^-e: the powers of two
  // (2^-e, and 2^24 for limbs) ride on r (round(x r 2^k) = round(x r) 2^k), w is 1 without a norm weight
  // (XLoads), and the store positions of chunk i are chunk 0's plus i whole 32-column blocks (4 nthr columns,
  // nthr a multiple of 16: imma_x_offset and b_pair_word are periodic in them), so no per-chunk index math.
  const float sx = kLimbs ? r * xscale * 16777216.0f : kMma ? r * xscale : r;
  constexpr int d = kLimbs ? imma_pair_chunks(kLimbCodec) : 1;  // limbs: the partner chunk c ^ d, lane tid ^ d
  const bool second = (tid & d) != 0;
  uint8_t* const lbase =
      kLimbs ? xl + imma_x_offset(kLimbCodec, col0 + 4 * (tid & ~d) + (second ? 2 : 0), 0) : nullptr;
  uint32_t* const hbase = kMma && !kLimbs ? xb + b_pair_word(col0 + 4 * tid) : nullptr;
  const int lim = kLimbs ? cols / 4 : nchunk;  // chunks converted (limbs: the padded columns too, as zeros)
  float* const gbase = gsum + col0 / 32 + (tid >> 3);  // chunk i's unit sum: gbase[i nthr / 8] (nthr % 8 == 0)
#pragma unroll
  for (int i = 0; i < NCH; ++i) {
    const int c = tid + i * nthr;
    // a warp whose 32 chunks all lie beyond what is staged skips the conversion (warp-uniform, so the
    // shuffles below run in all lanes of a warp or in none)
    if ((tid & ~31) + i * nthr >= lim) continue;
    // x r w 2^-e (limbs: times 2^24); the norm weight is ones without a norm
    const float v[4] = {wmul(xv[i].x * sx, wv[i].x), wmul(xv[i].y * sx, wv[i].y), wmul(xv[i].z * sx, wv[i].z),
                        wmul(xv[i].w * sx, wv[i].w)};
    float su = 0.0f;  // tensor cores: the sum of this chunk's scaled x (32-column sums below)
    if constexpr (kLimbs) {
      // the limbs of this chunk's 4 columns; the partner chunk c ^ d holds the columns that share MMA k-quads
      // with them: the first of the pair keeps its columns 0, 1 and takes the partner's 0, 1, the second
      // takes the first's 2, 3 and keeps its own 2, 3, so that each writes the 4 words (one per limb) of one
      // k-quad (limb_words)
      su = ((v[0] + v[1]) + v[2]) + v[3];  // = 2^24 (((0 + v0') + v1') + v2') + v3') exactly
      uint32_t L[4];
#pragma unroll
      for (int p = 0; p < 4; ++p) L[p] = x_limbs_scaled(v[p]);  // zeros for columns beyond K (x = 0)
      const uint32_t r0 = __shfl_xor_sync(0xffffffffu, second ? L[0] : L[2], d);
      const uint32_t r1 = __shfl_xor_sync(0xffffffffu, second ? L[1] : L[3], d);
      uint32_t w[4];
      limb_words<kLimbCodec>(second ? r0 : L[0], second ? r1 : L[1], second ? L[2] : r0, second ? L[3] : r1, w);
      if (4 * c < cols) {
        // the first chunk's columns p0, p0 + 1 (p0 = 0, or 2 for the second of the pair) start the word
        uint32_t* dst = reinterpret_cast<uint32_t*>(lbase + 16 * nthr * i);
#pragma unroll
        for (int j = 0; j < 4; ++j) dst[2 * j] = w[j];  // limb j: 8 bytes further
      }
    } else if constexpr (kMma) {
      su = (v[0] + v[1]) + (v[2] + v[3]);  // = (0 + (v0 + v1)) + (v2 + v3)
      if (c < nchunk) {
        const __half2 h01 = __floats2half2_rn(v[0], v[1]), h23 = __floats2half2_rn(v[2], v[3]);
        const float2 f01 = __half22float2(h01), f23 = __half22float2(h23);
        const __half2 l01 = __floats2half2_rn(v[0] - f01.x, v[1] - f01.y);
        const __half2 l23 = __floats2half2_rn(v[2] - f23.x, v[3] - f23.y);
        uint32_t* dst = hbase + 2 * nthr * i;  // columns 4c, 4c + 1; 4c + 2, 4c + 3 two words further
        dst[0] = bits_u32(h01);
        dst[2] = bits_u32(h23);
        dst[a.xstride] = bits_u32(l01);
        dst[a.xstride + 2] = bits_u32(l23);
      }
    } else if (c < nchunk) {
      *reinterpret_cast<float4*>(xs + 4 * c) = make_float4(v[0], v[1], v[2], v[3]);
    }
    if constexpr (kMma && kAffine) {  // 8 consecutive threads hold the 32 columns of a unit
      su += __shfl_xor_sync(0xffffffffu, su, 4);
      su += __shfl_xor_sync(0xffffffffu, su, 2);
      su += __shfl_xor_sync(0xffffffffu, su, 1);
      if ((tid & 7) == 0 && c < nchunk) gbase[i * (nthr >> 3)] = kLimbs ? su * 0x1p-24f : su;
    }
  }
  // zeros beyond K: the padded columns (and whole padded units) contribute nothing (limbs: written above)
  for (int k = K + 2 * tid; k < cols && !kLimbs; k += 2 * nthr) {
    if constexpr (kMma) {
      xb[b_pair_word(k)] = 0u;
      xb[a.xstride + b_pair_word(k)] = 0u;
    } else {
      xs[k] = 0.0f;
      xs[k + 1] = 0.0f;
    }
  }
  if constexpr (kAffine)
    for (int u = (K + 31) / 32 + tid; u < cols / 32; u += nthr) gsum[u] = 0.0f;
  __syncthreads();
}

// The limbs of x (one token) when stage_x_one_pass cannot run: token_stats' factors (its fp16 scale is
// 2^8 times too large for limbs) and an element-wise pass. The caller synchronizes before and after.
template <GpuCodec C>
__device__ __forceinline__ void stage_x_limbs(const GemvArgs& a, float* st, uint8_t* xl, float* gsum, int cols) {
  token_stats(a, st, true);
  const float xscale = st[8] * (1.0f / 256.0f);
  if (threadIdx.x == 0) st[16] *= 256.0f;
  const bool aligned = pairs_aligned(a);
  for (int k = 2 * int(threadIdx.x); k < cols; k += 2 * int(blockDim.x)) {
    const float2 xv = x_normed_pair(a, st, aligned, 0, k);  // zeros beyond K
    const uint32_t l0 = x_limbs(xv.x * xscale), l1 = x_limbs(xv.y * xscale);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      xl[imma_x_offset(C, k, j)] = uint8_t(l0 >> (8 * j));
      xl[imma_x_offset(C, k + 1, j)] = uint8_t(l1 >> (8 * j));
    }
  }
  if constexpr (codec_info(C).scale == ScaleKind::Affine || C == GpuCodec::T2)
    for (int u = int(threadIdx.x); u < cols / 32; u += int(blockDim.x)) {
      float su = 0.0f;
      for (int k = 32 * u; k < 32 * u + 32; k += 2) {
        const float2 xv = x_normed_pair(a, st, aligned, 0, k);
        su += xv.x * xscale + xv.y * xscale;
      }
      gsum[u] = su;
    }
}

// d (s32, 16x8) += a (16x32, u8 when kUnsignedA, else s8) b (32x8, s8): mma.m16n8k32, exact.
template <bool kUnsignedA>
__device__ __forceinline__ void imma_16832(int* d, const uint32_t* a, const uint32_t* b) {
  if constexpr (kUnsignedA)
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The integer path's sums (gemv_decode.h, imma_*): lane (g, t) holds columns 2t, 2t+1 of the MMA output,
// i.e. limbs 0, 1 (t = 0) or 2, 3 (t = 1) of rows g and g+8; t = 2, 3 hold repeats (weight 0). A group
// (group-affine formats) or the whole piece (row scale) accumulates in s32, exactly; then this folds it
// into fp32.
struct IntRun {
  int D[4];
  float gs;        // sum of x over the group (offset term) or the piece (ternary: codes are values + 1)
  uint32_t sc[2];  // the group's scale entries
  int gmask;
};
// Weights of this lane's two columns: limb j counts 2^(8 j - 24); 0 for the repeats.
__device__ __forceinline__ float2 limb_weights(int t) {
  return t == 0 ? make_float2(0x1p-24f, 0x1p-16f) : t == 1 ? make_float2(0x1p-8f, 1.0f) : make_float2(0.0f, 0.0f);
}
// Folds the run into accY (rows g, g+8) and empties it. The x sums are added by the t = 0 lanes only.
template <GpuCodec C>
__device__ __forceinline__ void int_fold(IntRun& r, float (*accY)[2], int t) {
  const float2 w = limb_weights(t);
  const float p0 = fmaf(w.x, float(r.D[0]), w.y * float(r.D[1]));
  const float p1 = fmaf(w.x, float(r.D[2]), w.y * float(r.D[3]));
  const float gs = t == 0 ? r.gs : 0.0f;
  if constexpr (codec_info(C).scale == ScaleKind::Affine) {
    float f0, f1, m0, m1;
    affine_entry(r.sc[0], &f0, &m0);
    affine_entry(r.sc[1], &f1, &m1);
    if constexpr (C == GpuCodec::U4) f1 *= 0.0625f;  // row g+8's codes entered times 16
    accY[0][0] = fmaf(f0, p0, fmaf(m0, gs, accY[0][0]));
    accY[0][1] = fmaf(f1, p1, fmaf(m1, gs, accY[0][1]));
  } else {  // row scale (applied by the epilogue); ternary codes are the values + 1
    accY[0][0] += C == GpuCodec::T2 ? p0 - gs : p0;
    accY[0][1] += C == GpuCodec::T2 ? p1 - gs : p1;
  }
  r.gs = 0.0f;
  r.D[0] = r.D[1] = r.D[2] = r.D[3] = 0;
}
// One packet p (along the tile row): each block through one integer MMA (this lane's B pair: limb g % 4),
// with the x sums and scales of the units it spans; group-affine runs fold at their group's last unit.
template <GpuCodec C>
__device__ __forceinline__ void imma_packet(const uint32_t* words, const uint32_t (*sc)[2], int p, const uint8_t* xl,
                                            const float* gsum, int lane, IntRun& run, float (*accY)[2]) {
  constexpr int NQ = imma_blocks(C), NU = imma_units(C);
  constexpr bool kAffine = codec_info(C).scale == ScaleKind::Affine;
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int q = 0; q < NQ; ++q) {
    uint32_t A[4];
    imma_a<C>(words, q, A);
    const int block = p * NQ + q;
    const uint2 b = *reinterpret_cast<const uint2*>(xl + block * 128 + (t * 4 + (g & 3)) * 8);
    const uint32_t B[2] = {b.x, b.y};
    imma_16832<C != GpuCodec::I8>(run.D, A, B);  // only int8 codes are signed
    // int1: blocks 2u, 2u + 1 span the same units 2u', 2u' + 1; their sums count once, after the second
    if constexpr (NU == 2) {
      if (q % 2 == 0) continue;
    }
    if constexpr (kAffine || C == GpuCodec::T2) {
      const int u0 = NU == 2 ? block - 1 : block;  // the block's first unit (NU == 2: block is odd here)
#pragma unroll
      for (int u = 0; u < NU; ++u) run.gs += gsum[u0 + u];
      if constexpr (kAffine) {
        const int uq = (q / NU) * NU;  // the packet's unit of u0: its scale entries (NU == 2: same group)
        run.sc[0] = sc[uq][0];
        run.sc[1] = sc[uq][1];
        if (((u0 + NU - 1) & run.gmask) == run.gmask) int_fold<C>(run, accY, t);
      }
    }
  }
}

// The epilogue of rows j and j + 8 of a tile for token m (v0, v1: their sums, before ys = factor * 2^e).
// kSplit (the MMA kernel): the launch may be in K slices (a.ksplit > 1): then its AddF32 sums go to the output
// with atomicAdd (in whatever order the slices finish).
template <bool kSplit = false>
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
  } else if (kSplit && a.ksplit > 1) {  // (AddF32: the host splits no other epilogue)
    const int64_t n = tile * 16 + j;
    float* out = static_cast<float*>(a.out) + m * a.ld;
    if (n < a.w.rows) atomicAdd(out + n, y0);
    if (n + 8 < a.w.rows) atomicAdd(out + n + 8, y1);
  } else {
    const int64_t n = tile * 16 + j;
    if (n < a.w.rows) store_out(a, m, n, y0);
    if (n + 8 < a.w.rows) store_out(a, m, n + 8, y1);
  }
}

// This block's run of tiles: its first tile and their count (a.split_blocks > 0: the first tiles % blocks
// blocks, scheduled first, one tile more), and the packets per warp of the run.
// (no divisions: the host computed the counts, launch_gemv_stream)
// kSplit (the MMA kernel): the launch may be in K slices (a.ksplit > 1, split_blocks > 0): the blocks of slice s
// are s * split_blocks .. (s + 1) * split_blocks - 1, each slice's tiles split among them the same way.
template <bool kSplit>
__device__ __forceinline__ int block_slice(const GemvArgs& a) {
  return kSplit && a.ksplit > 1 ? int(blockIdx.x) / a.split_blocks : 0;
}
template <bool kSplit>
__device__ __forceinline__ int block_in_slice(const GemvArgs& a) {
  return kSplit && a.ksplit > 1 ? int(blockIdx.x) - block_slice<kSplit>(a) * a.split_blocks : int(blockIdx.x);
}
template <bool kSplit = false>
__device__ __forceinline__ int2 block_tiles(const GemvArgs& a) {
  const int b = block_in_slice<kSplit>(a);
  if (a.split_blocks <= 0) return make_int2(b * a.tiles_per_block, a.tiles_per_block);
  return make_int2(b * a.split_base + min(b, a.split_extra), a.split_base + (b < a.split_extra ? 1 : 0));
}
template <bool kSplit = false>
__device__ __forceinline__ int block_per_warp(const GemvArgs& a) {
  return a.split_blocks > 0 && block_in_slice<kSplit>(a) >= a.split_extra ? a.per_warp_lo : a.per_warp;
}
// A warp's sums for tile `lt` of its block are complete when it covered the whole tile; otherwise they are
// one piece: stored in shared memory, counted, and the warp that brings the last piece adds all pieces (in
// piece order) and returns true with v0 / v1 replaced by the totals. NP pairs (row j, token m) per lane,
// `ok` where the lane holds one. pieces: [tiles_per_block + warps][16 rows][4 tokens], then the counters.
template <int NPAIR, bool kSplit = false>
__device__ __forceinline__ bool stream_fixup(const GemvArgs& a, float* pieces, unsigned* pcnt, int lt, int warp,
                                             bool whole, const int* j, const int* m, const bool* ok, float* v0,
                                             float* v1) {
  if (whole) return true;
  const int lane = threadIdx.x & 31;
  const int per_warp = block_per_warp<kSplit>(a);  // (recomputed here, not held in a register through the loop)
  const int first = lt * a.np / per_warp, last = (lt * a.np + a.np - 1) / per_warp;
  // piece index lt + warp: unique, since the warps of tile lt + 1 start where those of tile lt end
  float* mine = pieces + (lt + warp) * 64;
#pragma unroll
  for (int i = 0; i < NPAIR; ++i)
    if (ok[i]) {
      mine[j[i] * 4 + m[i]] = v0[i];
      mine[(j[i] + 8) * 4 + m[i]] = v1[i];
    }
  __threadfence_block();  // the piece is visible to the other warps before the count says so
  __syncwarp();
  unsigned arrived = 0;
  if (lane == 0) arrived = atomicAdd(pcnt + lt, 1u);
  arrived = __shfl_sync(0xffffffffu, arrived, 0);
  if (arrived != unsigned(last - first)) return false;
  __threadfence_block();
#pragma unroll
  for (int i = 0; i < NPAIR; ++i) {
    v0[i] = v1[i] = 0.0f;
    if (!ok[i]) continue;
    for (int w = first; w <= last; ++w) {
      const float* p = pieces + (lt + w) * 64;
      v0[i] += p[j[i] * 4 + m[i]];
      v1[i] += p[(j[i] + 8) * 4 + m[i]];
    }
  }
  return true;
}

// This block's run of tiles [bt0, bt0 + TB) and this warp's packets [pbeg, pend); zeroes the piece counters
// (ordered before their use by the staging's barrier).
struct StreamShare {
  int bt0, pbeg, pend;
  float* pieces;
  unsigned* pcnt;
};
template <bool kSplit = false>
__device__ __forceinline__ StreamShare stream_share(const GemvArgs& a, uint8_t* smem) {
  const int tiles = int(a.w.rows_pad / 16), warp = int(threadIdx.x >> 5);
  StreamShare sh;
  const int2 run = block_tiles<kSplit>(a);
  const int per_warp = block_per_warp<kSplit>(a);
  sh.bt0 = run.x;
  const int bend = min(tiles, sh.bt0 + run.y) * a.np;
  sh.pbeg = min(sh.bt0 * a.np + warp * per_warp, bend);
  sh.pend = min(sh.pbeg + per_warp, bend);
  sh.pieces = reinterpret_cast<float*>(smem + a.off_pieces);
  sh.pcnt = reinterpret_cast<unsigned*>(sh.pieces + (a.tiles_per_block + int(blockDim.x >> 5)) * 64);
  for (int i = int(threadIdx.x); i < a.tiles_per_block; i += int(blockDim.x)) sh.pcnt[i] = 0u;
  return sh;
}

// ---- tensor-core formats ------------------------------------------------------------------------------

// IM: the integer path (has_imma(C), one token): x as limbs, mma.m16n8k32 on the codes as they are.
// The launch may be in K slices (a.ksplit > 1; one token, no norm weight, AddF32: stream_ksplit, gemv.cu). One
// function serves both: the GEMVs of a layer run one after another and overlap at their ends (programmatic
// dependent launch), and two ~115 KB functions there did not share the instruction cache well: a separate
// split instantiation slowed its own launch (down) and the next one (Q|K|V) by 2-4 us each (H100, 2026-12-07,
// h100-ab-2026-12-07-0948.txt).
template <GpuCodec C, bool IM>
__global__ void __launch_bounds__(kStreamThreads, 1) gemv_stream_mma_kernel(const GemvArgs a) {
  constexpr bool kSplit = true;  // (the helpers' runtime checks of a.ksplit)
  // The placements of the ring's first batches and of the next kernel's trigger (LOWBIT_GEMV_REST, _TRIGGER,
  // LOWBIT_PDL_WAIT) read at run time in a build with -DLOWBIT_GEMV_AB_KNOBS=ON; by default their defaults as
  // constants: the other placements' code (~1,100 of int4's ~7,250 SASS instructions: issue_next inlined at
  // each placement) is not compiled (the instruction cache: docs/cuda-kernels.md, "K slices").
  constexpr bool kKnobs = LOWBIT_GEMV_AB_KNOBS != 0;
  const int rest = kKnobs ? a.rest : kRestEarly, trigger = kKnobs ? a.trigger : kTriggerStaged;
  const bool wait_one = kKnobs && a.wait_one;
  constexpr int NCH = kStageChunks;  // the one-pass staging's float4s of x (and the norm weight) per thread
  static_assert(!IM || has_imma(C), "the integer path takes integer codes");
  constexpr CodecInfo ci = codec_info(C);
  constexpr int PKS = ci.pks, PW = ci.pw, U = stream_unroll(C);
  constexpr ScaleKind SK = ci.scale;
  constexpr int NSC = PKS / 2 > 0 ? PKS / 2 : 1;
  constexpr int SUB = scale_unit_bytes(C), CODE_BYTES = U * PW * 512, STAGE = stage_bytes(C);
  extern __shared__ __align__(16) uint8_t smem[];
  float* st = reinterpret_cast<float*>(smem + a.off_stats);
  float* gsum = reinterpret_cast<float*>(smem + a.off_gsum);
  uint32_t* xb = reinterpret_cast<uint32_t*>(smem + a.off_x);
  const uint4* lut = reinterpret_cast<const uint4*>(smem);  // T5 only: at offset 0
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int M = a.M, NP = a.np, S = a.stages;
  uint8_t* ring = smem + a.off_red + warp * S * STAGE;  // this warp's S stages
  const StreamShare sh = stream_share<kSplit>(a, smem);
  const int pbeg = sh.pbeg, pend = sh.pend;
  const int64_t n_units = a.w.scale_units(SK);
  const int gshift = SK == ScaleKind::Affine ? __ffs(a.w.group >> 5) - 1 : 0;  // group = 32 << gshift
  const uint8_t* codes = a.w.codes;
  // K slices (kSplit): this block's packets of each tile row are [KLO, KLO + NP) of its a.np_tile; the
  // cursors below count packets of the slice, the code pointer, the scale rows, x and its unit sums start at
  // the slice's (the host keeps slices whole groups: the group folds see the same unit indices mod the group)
  const int KLO = block_slice<kSplit>(a) * NP, XCOL0 = KLO * PKS * 16;

  // Batches never cross a tile: a batch is min(U, packets left in the tile, packets left in the share).
  // Both cursors below (the batch being issued, the batch being computed) advance by additions only: the
  // loop runs every few hundred instructions per SM, and a runtime division costs ~20 of them.
  const int tile0 = pbeg / NP, kp0 = pbeg - tile0 * NP;
  constexpr int kPieces = SUB / 16;      // 16-byte pieces per scale unit
  constexpr int kUnits = PKS / 2;        // 32-column scale units per packet
  static_assert(U * kUnits * kPieces <= 32, "one 16-byte scale piece per lane and batch");
  const int64_t unit_row = n_units * SUB;  // bytes of one tile's scale units
  // issue cursor: next packet, its offset in its tile, this lane's word of its codes, its tile's scale row
  int qi = pbeg, ki = kp0, si = 0;
  const uint8_t* gi = codes + (int64_t(tile0) * a.np_tile + KLO + kp0) * PW * 512 + lane * 16;
  const uint8_t* srow = a.w.scales + int64_t(tile0) * unit_row +
                        int64_t(SK == ScaleKind::Affine ? (KLO * kUnits) >> gshift : KLO * kUnits) * SUB;
  // One batch of the walk at cursor (q, k, gp, sr) (packet, offset in its tile, this lane's word of its
  // codes, its tile's scale row): calls code(offset in the stage, source) for each of this lane's 16-byte
  // code words and scale(source) for its (at most one) 16-byte piece of the batch's scale units, moves the
  // cursor past the batch and returns its packets (0 at the end of the share).
  auto walk_batch = [&](int& q, int& k, const uint8_t*& gp, const uint8_t*& sr, auto&& code, auto&& scale) {
    const int n = q < pend ? min(U, min(NP - k, pend - q)) : 0;
    if (n == 0) return 0;
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int j = 0; j < PW; ++j)
        if (u < n) code((u * PW + j) * 512, gp + (u * PW + j) * 512);
    if constexpr (SUB > 0) {
      if (lane < n * kUnits * kPieces) {
        const int unit = k * kUnits + lane / kPieces;  // 32-column unit along K
        const int entry = SK == ScaleKind::Affine ? unit >> gshift : unit;
        scale(sr + int64_t(entry) * SUB + (lane % kPieces) * 16);
      }
    }
    q += n;
    gp += n * PW * 512;
    k += n;
    if (k == NP) {
      k = 0;
      sr += unit_row;
      gp += (a.np_tile - NP) * PW * 512;  // K slices: to the next tile row's slice (else np_tile = NP: 0)
    }
    return n;
  };
  // Issues the copies of the next batch into ring slot si and commits them as one group (empty groups
  // too, so that the group count is the batch count).
  auto issue_next = [&]() {
    uint8_t* dst = ring + si * STAGE;
    walk_batch(
        qi, ki, gi, srow, [&](int off, const uint8_t* src) { cp_async16(dst + off + lane * 16, src); },
        [&](const uint8_t* src) { cp_async16(dst + CODE_BYTES + lane * 16, src); });
    cp_async_commit();
    si = si + 1 == S ? 0 : si + 1;
  };

  // `early` of the S - 1 batches in flight before anything else (they do not depend on the previous
  // kernel); the others right after x's loads, so that x's loads do not queue behind them
  const int early = a.early < 0 ? S - 1 : min(a.early, S - 1);
  for (int k = 0; k < early; ++k) issue_next();

  unsigned long long* stamps = a.timeline ? a.timeline + kTimelineStamps * blockIdx.x : nullptr;
  if (stamps && tid == 0) stamp_entry(stamps);
  note_progress(a);
  const bool one_pass = one_pass_ok<NCH>(a), w_early = one_pass && a.norm_early;
  XLoads<NCH> xl;
  if (w_early) stage_w_issue<NCH>(a, xl);
  pdl_wait_block(wait_one);  // launch.cuh: x and the outputs only after this point
  if (trigger == kTriggerWait) pdl_trigger();
  if (stamps && tid == 0) stamps[1] = global_ns();
  if (stamps && lane == 0) atomicMax(stamps + 7, global_ns());
  if constexpr (C == GpuCodec::T5) {
    uint4* l = reinterpret_cast<uint4*>(smem);
    for (int i = tid; i < 256 * 8; i += blockDim.x) {
      const T5Entry e = t5_entry(uint32_t(i / 8));
      l[i] = make_uint4(e.p01, e.p23, e.p4, 0u);
    }
  }
  // the batches after `early`: right after x's loads, once they have arrived, or after the staging
  // (rest, LOWBIT_GEMV_REST)
  auto issue_rest = [&]() {
    for (int k = early; k < S - 1; ++k) issue_next();
  };
  if (one_pass) {
    // K slices: the slice's columns only (a.xk; no padding inside a slice: the host checked K = a.np_tile packets)
    stage_x_issue<NCH>(a, xl, !w_early, XCOL0);
    if (rest == kRestEarly) issue_rest();
    constexpr bool kSums = SK == ScaleKind::Affine || (IM && C == GpuCodec::T2);  // 32-column sums of x
    // with and without a norm weight (o, down: no products with it in the conversion)
    const auto stage = [&](auto norm) {
      stage_x_one_pass<true, kSums, IM ? C : GpuCodec::PlainF32, NCH, decltype(norm)::value>(
          a, xl, st, xb, nullptr, gsum, NP * PKS * 16, stamps,
          [&]() {
            if (rest == kRestArrived) issue_rest();
            if (trigger == kTriggerArrived) pdl_trigger();
          },
          [&]() {
            if (rest == kRestReduced) issue_rest();
          },
          XCOL0);
    };
    if (a.norm_w)
      stage(std::true_type{});
    else
      stage(std::false_type{});
  } else {
    if (rest != kRestLate) issue_rest();
    if constexpr (IM) {
      stage_x_limbs<C>(a, st, reinterpret_cast<uint8_t*>(xb), gsum, NP * PKS * 16);
    } else {
      token_stats(a, st, true);
      stage_x_mma<C>(a, st, st + 8, xb, gsum, 0, NP);
    }
    __syncthreads();
  }
  if (rest == kRestLate) issue_rest();
  if (trigger == kTriggerStaged || (trigger == kTriggerArrived && !one_pass)) pdl_trigger();
  if (stamps && tid == 0) stamps[2] = global_ns();
  const float* yscale = st + 16;

  float accC[1][4] = {{0.0f, 0.0f, 0.0f, 0.0f}};  // Row scale: the running MMA accumulators
  float accY[1][2] = {{0.0f, 0.0f}};              // scale units: rows g, g+8 of token t
  AffineRun run{{{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}}, 0.0f, {0u, 0u}, (1 << gshift) - 1};
  // (run: the open group of group-affine weights)
  IntRun irun{{0, 0, 0, 0}, 0.0f, {0u, 0u}, (1 << gshift) - 1};  // the integer path's open group / piece
  // x and its unit sums from the slice's first column on (limbs: 4 bytes per column; fp16 hi / lo: 8 words
  // per 16 columns; a unit sum per 32 columns)
  const uint8_t* const xl_k = reinterpret_cast<const uint8_t*>(xb) + XCOL0 * 4;
  const uint32_t* const xb_k = xb + XCOL0 / 2;
  const float* const gs_k = gsum + XCOL0 / 32;
  int tile = tile0, kp = kp0, slot = 0;  // compute cursor: tile, offset in it, ring slot
  bool from_start = kp0 == 0;             // this warp's piece of the tile began at its first packet
  for (int q = pbeg; q < pend;) {
    const int n = min(U, min(NP - kp, pend - q));
    cp_async_wait(S - 2);  // this batch has landed (S - 2 later ones may still fly) ...
    __syncwarp();          // ... for every lane, and everyone is done with the slot refilled next
    issue_next();
    const uint8_t* src = ring + slot * STAGE;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (u >= n) break;
      uint32_t words[4 * PW];
#pragma unroll
      for (int j = 0; j < PW; ++j) {
        const uint4 v = *reinterpret_cast<const uint4*>(src + (u * PW + j) * 512 + lane * 16);
        words[4 * j] = v.x;
        words[4 * j + 1] = v.y;
        words[4 * j + 2] = v.z;
        words[4 * j + 3] = v.w;
      }
      uint32_t sc[NSC][2];
      if constexpr (SUB > 0) {
#pragma unroll
        for (int k = 0; k < PKS / 2; ++k) {
          const uint8_t* unit = src + CODE_BYTES + (u * (PKS / 2) + k) * SUB;
          if constexpr (SK == ScaleKind::Affine) {
            const uint2 v = *reinterpret_cast<const uint2*>(unit + g * 8);
            sc[k][0] = v.x;
            sc[k][1] = v.y;
          } else if constexpr (SK == ScaleKind::Mx) {
            sc[k][0] = *reinterpret_cast<const unsigned short*>(unit + g * 2);
          } else {
            sc[k][0] = *reinterpret_cast<const uint32_t*>(unit + g * 4);
          }
        }
      }
      if constexpr (IM)
        imma_packet<C>(words, sc, kp + u, xl_k, gs_k, lane, irun, accY);
      else
        mma_packet<C, 1>(words, sc, (kp + u) * PKS, xb_k, a.xstride, gs_k, a.gstride, M, lut, lane, accC, accY,
                         SK == ScaleKind::Affine ? &run : nullptr);
    }
    q += n;
    kp += n;
    if (kp == NP || q == pend) {
      if constexpr (IM) {  // the open group (or the piece's s32 sums); then the limbs of lanes t, t^1 added
        int_fold<C>(irun, accY, t);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          accY[0][h] += __shfl_xor_sync(0xffffffffu, accY[0][h], 1);
          accY[0][h] += __shfl_xor_sync(0xffffffffu, accY[0][h], 2);
        }
      } else if constexpr (SK == ScaleKind::Affine) {
        affine_fold(run, accY);  // a group cut by the piece's end
      }
      float v0[1] = {SK == ScaleKind::Row && !IM ? accC[0][0] + accC[0][1] : accY[0][0]};
      float v1[1] = {SK == ScaleKind::Row && !IM ? accC[0][2] + accC[0][3] : accY[0][1]};
      const int jj[1] = {g}, mm[1] = {t};
      const bool ok[1] = {t < M};
      if (stream_fixup<1, kSplit>(a, sh.pieces, sh.pcnt, tile - sh.bt0, warp, from_start && kp == NP, jj, mm, ok, v0,
                                  v1) &&
          t < M)
        emit_rows<kSplit>(a, tile, g, t, v0[0], v1[0], ci.factor * yscale[t], SK == ScaleKind::Nv);
      accC[0][0] = accC[0][1] = accC[0][2] = accC[0][3] = 0.0f;
      accY[0][0] = accY[0][1] = 0.0f;
      from_start = true;
      if (kp == NP) {
        kp = 0;
        ++tile;
      }
    }
    slot = slot + 1 == S ? 0 : slot + 1;
  }
  cp_async_wait(0);  // nothing may be left in flight at exit
  if (stamps) {      // block-uniform
    __syncthreads();
    if (tid == 0) stamps[3] = global_ns();
  }
}

// ---- f32 / bf16 / fp16: fp32 FMAs ---------------------------------------------------------------------
// A packet here is 16 rows x 256 bytes: lane (h = lane / 16, c = lane % 16) loads chunk c of rows h, h + 2,
// .. h + 14 (each load instruction of the warp reads two 256-byte row pieces).

// NCH: float4s of x per thread in the one-pass staging. Where x's (and the norm weight's) float4s take at
// most 8 registers' worth of float4s (kStageChunksSmall with a norm weight: K <= 4096; kStageChunks without)
// the registers left over hold the second packet too, so that both are in flight while x is staged (DRAM
// otherwise idles through the staging); otherwise the second packet is loaded after the staging (it would
// spill). kNorm false: the launch has no norm weight (o, down).
template <GpuCodec C, int MT, int NCH = kStageChunks, bool kNorm = true>
__global__ void __launch_bounds__(kStreamThreads, 1) gemv_stream_plain_kernel(const GemvArgs a) {
  constexpr int EPC = 16 / codec_info(C).esize;  // elements per 16-byte chunk
  extern __shared__ __align__(16) uint8_t smem[];
  float* st = reinterpret_cast<float*>(smem + a.off_stats);
  float* xs = reinterpret_cast<float*>(smem + a.off_x);
  const int tid = threadIdx.x, lane = tid & 31, h = lane >> 4, c = lane & 15;
  const int M = a.M, NP = a.np;
  const StreamShare sh = stream_share(a, smem);
  const int pbeg = sh.pbeg, pend = sh.pend, warp = tid >> 5;
  const int64_t chunks_row = a.w.row_stride / 16;

  // Loads and computes each walk the share in order; their cursors (packet, tile, offset in the tile)
  // advance by additions only (no runtime division per packet).
  const int tile0 = pbeg / NP, kp0 = pbeg - tile0 * NP;
  int lq = pbeg, lt = tile0, lk = kp0;  // the next packet to load
  // The packet at cursor (q, t, k): calls f(address of this lane's first chunk, chunk step, in_row) — its 8
  // chunks are address + i * step, none where !in_row (past the row) — then moves the cursor to the next one.
  auto walk_packet = [&](int& q, int& t, int& k, auto&& f) {
    const int64_t chunk = int64_t(k) * 16 + c;
    f(reinterpret_cast<const uint4*>(a.w.codes + (int64_t(t) * 16 + h) * a.w.row_stride) + chunk,
      2 * chunks_row, chunk < chunks_row);  // step: two rows, in 16-byte chunks
    ++q;
    if (++k == NP) {
      k = 0;
      ++t;
    }
  };
  auto load = [&](uint4* buf) {
    if (lq >= pend) return;
    walk_packet(lq, lt, lk, [&](const uint4* base, int64_t step, bool in_row) {
#pragma unroll
      for (int i = 0; i < 8; ++i) buf[i] = in_row ? ldg_stream(base + i * step) : make_uint4(0u, 0u, 0u, 0u);
    });
  };
  unsigned long long* stamps = a.timeline ? a.timeline + kTimelineStamps * blockIdx.x : nullptr;
  if (stamps && tid == 0) stamp_entry(stamps);
  note_progress(a);
  uint4 bA[8], bB[8];
  // the first packet before pdl_wait() (a.early != 0) or right after x's loads; the second right after x's
  // loads where NCH leaves it the registers, else after staging x
  // (a.early >= 2 or -1, all, and the registers: the second packet before pdl_wait() too)
  constexpr bool kSecondEarly = NCH * (kNorm ? 2 : 1) <= kStageChunks;
  bool second_loaded = false;
  auto load_second_if = [&](bool now) {  // once, and only where the registers allow it before the staging
    if (kSecondEarly && now && !second_loaded) {
      load(bB);
      second_loaded = true;
    }
  };
  if (a.early != 0) load(bA);
  load_second_if(a.early >= 2 || a.early < 0);

  const bool one_pass = one_pass_ok<NCH>(a), w_early = kNorm && one_pass && a.norm_early;
  XLoads<NCH> xl;
  if (w_early) stage_w_issue<NCH, kNorm>(a, xl);
  pdl_wait_block(a.wait_one);  // launch.cuh
  if (a.trigger == kTriggerWait) pdl_trigger();
  if (stamps && tid == 0) stamps[1] = global_ns();
  if (stamps && (tid & 31) == 0) atomicMax(stamps + 7, global_ns());
  if (one_pass) {
    stage_x_issue<NCH, kNorm>(a, xl, !w_early);
    if (a.early == 0) load(bA);
    load_second_if(a.rest == kRestEarly);
    stage_x_one_pass<false, false, GpuCodec::PlainF32, NCH, kNorm>(
        a, xl, st, nullptr, xs, nullptr, a.xstride, stamps,
        [&]() {
          load_second_if(a.rest == kRestArrived);
          if (a.trigger == kTriggerArrived) pdl_trigger();
        },
        [&]() { load_second_if(a.rest == kRestReduced); });
  } else {
    if (a.early == 0) load(bA);
    token_stats(a, st, false);
    stage_x_plain(a, st, xs, 0, a.xstride);
    __syncthreads();
  }
  if (a.trigger == kTriggerStaged || (a.trigger == kTriggerArrived && !one_pass)) pdl_trigger();
  if (!second_loaded) load(bB);
  if (stamps && tid == 0) stamps[2] = global_ns();

  float acc[8][MT];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[i][m] = 0.0f;
  int tile = tile0, kp = kp0;  // the packet being computed
  bool from_start = kp0 == 0;  // this warp's piece of the tile began at its first packet
  auto compute = [&](const uint4* buf, int q) {
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
    if (kp + 1 == NP || qe == pend) {
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
      if (stream_fixup<4 * MT>(a, sh.pieces, sh.pcnt, tile - sh.bt0, warp, from_start && kp + 1 == NP, jj, mm, ok,
                               v0, v1)) {
#pragma unroll
        for (int p = 0; p < 4 * MT; ++p)
          if (ok[p]) emit_rows(a, tile, jj[p], mm[p], v0[p], v1[p], 1.0f, false);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int m = 0; m < MT; ++m) acc[i][m] = 0.0f;
      from_start = true;
    }
    if (++kp == NP) {
      kp = 0;
      ++tile;
    }
  };
  for (int q = pbeg; q < pend; q += 2) {
    compute(bA, q);
    load(bA);
    if (q + 1 >= pend) break;
    compute(bB, q + 1);
    load(bB);
  }
  if (stamps) {  // block-uniform
    __syncthreads();
    if (tid == 0) stamps[3] = global_ns();
  }
}

// Whether integer codes (int8, int4, int2, int1, ternary) take the integer tensor-core path for one token
// (default; LOWBIT_GEMV_IMMA=0 selects the fp16 path for A/B measurements). gemv.cu.
bool imma_enabled();

// Blocks per multiprocessor of a stream kernel with this much dynamic shared memory (cached per kernel and
// size).
inline int blocks_per_sm(void (*kernel)(GemvArgs), int smem_bytes) {
  static std::map<std::pair<const void*, int>, int> cache;
  const auto key = std::make_pair(reinterpret_cast<const void*>(kernel), smem_bytes);
  const auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  raise_smem_limit(kernel, smem_bytes);
  int n = 0;
  LB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kStreamThreads, smem_bytes));
  cache[key] = n;
  return n;
}

// The stream kernel of codec C for launch `a`, or null (plain formats take one token: more would spill).
// Integer codes take the integer path for one token (int1: groups of at least 64 columns, the span of one
// of its MMAs).
template <GpuCodec C>
void (*stream_kernel(const GemvArgs& a))(GemvArgs) {
  if constexpr (is_plain(C)) {
    if (a.M != 1) return nullptr;
    if (a.w.cols <= int64_t(4 * kStageChunksSmall) * kStreamThreads)
      return gemv_stream_plain_kernel<C, 1, kStageChunksSmall>;
    return a.norm_w ? gemv_stream_plain_kernel<C, 1> : gemv_stream_plain_kernel<C, 1, kStageChunks, false>;
  } else {
    const bool im = has_imma(C) && a.M == 1 && imma_enabled() &&
                    (imma_units(C) == 1 || a.w.group >= 32 * imma_units(C));
    return im ? gemv_stream_mma_kernel<C, has_imma(C)> : gemv_stream_mma_kernel<C, false>;
  }
}

// The grid of a stream launch planned by plan_stream_smem (gemv.cu): fills in a's warp shares and balanced split
// (per_warp, per_warp_lo, split_base, split_extra: the counts block_tiles() reads) and returns the number of
// blocks, or 0 where the plan cannot run. The launch and the L2 prefetcher's plan (gemv_stream_read_order) both
// take their blocks' tiles from here.
inline int64_t stream_grid(GemvArgs& a) {
  if (a.tiles_per_block <= 0) return 0;
  const int64_t tiles = a.w.rows_pad / 16;
  if (tiles * a.np >= (int64_t(1) << 30)) return 0;
  a.per_warp = int((int64_t(a.tiles_per_block) * a.np + kStreamWarps - 1) / kStreamWarps);
  if (a.split_blocks > 0) {  // base or base + 1 tiles per block (<= tiles_per_block = ceil(tiles / SMs))
    a.split_base = int(tiles / a.split_blocks);
    a.split_extra = int(tiles % a.split_blocks);
    if (a.split_base + (a.split_extra > 0 ? 1 : 0) > a.tiles_per_block) return 0;
    a.per_warp = int((int64_t(a.split_base + 1) * a.np + kStreamWarps - 1) / kStreamWarps);
    a.per_warp_lo = int((int64_t(a.split_base) * a.np + kStreamWarps - 1) / kStreamWarps);
  }
  return a.split_blocks > 0 ? int64_t(a.split_blocks) * a.ksplit : (tiles + a.tiles_per_block - 1) / a.tiles_per_block;
}

// Launches the stream kernel of codec C: one block per run of a.tiles_per_block tiles (plan_stream_smem,
// gemv.cu), each warp an equal share of its block's packets. Returns false, launching nothing, where the
// kernel cannot run this launch (no kernel for it, or its shared memory does not fit).
template <GpuCodec C>
bool launch_gemv_stream(GemvArgs a, int smem_bytes, cudaStream_t s) {
  const auto kernel = stream_kernel<C>(a);
  if (!kernel || blocks_per_sm(kernel, smem_bytes) <= 0) return false;
  const int64_t blocks = stream_grid(a);  // (0 where a.tiles_per_block <= 0)
  if (blocks == 0) return false;
  launch(kernel, unsigned(blocks), kStreamThreads, size_t(smem_bytes), s, a);
  LB_CUDA_LAUNCH_CHECK();
  return true;
}

// The explicit instantiations of codec c's kernels (gemv_<family>.cu).
#define LB_INSTANTIATE_GEMV(c)                                                                  \
  template void launch_gemv_codec<GpuCodec::c>(const GemvArgs&, unsigned, int, cudaStream_t); \
  template bool launch_gemv_stream<GpuCodec::c>(GemvArgs, int, cudaStream_t);

}  // namespace lowbit::cuda

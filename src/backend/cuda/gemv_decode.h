// Fragment decoders: a lane's packet words (weights_layout.h) -> the fp16x2 A registers of
// mma.m16n8k16 for each k-step. Host and device: on the host the few device intrinsics are emulated
// exactly, so tests/formats/gpu_layout_test.cpp checks every decoder against gpu_decode_element().
//
// Tricks (each exact):
//  * integers: OR a field into the mantissa of the fp16 1024.0 (0x6400, 10 mantissa bits, ulp 1) to get
//    1024 + c * 2^j, then one fused a*b+c per pair removes the 1024 and the 2^j (powers of two: exact).
//  * int8: byte_perm builds 0x64bb halves = 1024 + (q ^ 0x80) from two stored bytes, minus 1152 gives q.
//  * E5M2 is the high byte of an fp16: byte_perm with a zero byte. E4M3: the cvt.rn.f16x2.e4m3x2 unit.
//  * E2M1 / E3M2 / E2M3: sign and magnitude bits are stored where one funnel rotation puts them on the
//    fp16 sign / exponent / mantissa bits; the fp16 then is the value times 2^-14 (2^-12 for E3M2): the
//    power of two is applied in fp32 after the dot product (CodecInfo::factor).
//  * ternary-1.6: a 256-entry table (shared memory, 8 copies to avoid bank conflicts) maps a byte to
//    its 5 trits as fp16 pairs; two bytes give 5 pairs with 3 byte_perms.
#pragma once
#include <cmath>
#include <cstdint>

#include "backend/cuda/weights_layout.h"
#include "util/half.h"
#include "util/hd.h"

// Loop unrolling hint for nvcc; nothing for host compilers (which would warn about the pragma).
#if defined(__CUDACC__)
#define LB_UNROLL _Pragma("unroll")
#else
#define LB_UNROLL
#endif

namespace lowbit::cuda {

// ---- the intrinsics, emulated on the host ------------------------------------------------------------

// Funnel rotation left by r (0..31).
LB_HD uint32_t rotl32(uint32_t x, int r) {
#if defined(__CUDA_ARCH__)
  return __funnelshift_l(x, x, r);
#else
  r &= 31;
  return r ? (x << r) | (x >> (32 - r)) : x;
#endif
}

// Byte permute (PTX prmt, default mode); selectors used here never set a nibble's top bit.
LB_HD uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t sel) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(a, b, sel);
#else
  const uint64_t bytes = uint64_t(a) | (uint64_t(b) << 32);
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= uint32_t((bytes >> (8 * ((sel >> (4 * i)) & 7))) & 0xffu) << (8 * i);
  return r;
#endif
}

// (x & mask) | bits in one LOP3 (nvcc emits two instructions for the two constants otherwise).
LB_HD uint32_t and_or(uint32_t x, uint32_t mask, uint32_t bits) {
#if defined(__CUDA_ARCH__)
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(x), "r"(mask), "r"(bits));  // 0xEA: (a & b) | c
  return d;
#else
  return (x & mask) | bits;
#endif
}

// fp16x2 fused multiply-add, round to nearest even.
LB_HD uint32_t hfma2(uint32_t a, uint32_t b, uint32_t c) {
#if defined(__CUDA_ARCH__)
  uint32_t d;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
#else
  // the decoders only evaluate exact results (see the header comment): fp32 evaluation is exact too
  uint32_t d = 0;
  for (int i = 0; i < 2; ++i) {
    const float x = f16_to_f32(uint16_t(a >> (16 * i))) * f16_to_f32(uint16_t(b >> (16 * i))) +
                    f16_to_f32(uint16_t(c >> (16 * i)));
    d |= uint32_t(f32_to_f16(x)) << (16 * i);
  }
  return d;
#endif
}

// Two E4M3 codes (low byte first) -> two fp16.
LB_HD uint32_t cvt_e4m3x2(uint32_t two_codes) {
#if defined(__CUDA_ARCH__)
  uint32_t d;
  const unsigned short h = static_cast<unsigned short>(two_codes & 0xffffu);
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(d) : "h"(h));
  return d;
#else
  return uint32_t(f32_to_f16(FP8E4M3::decode(two_codes & 0xffu))) |
         uint32_t(f32_to_f16(FP8E4M3::decode((two_codes >> 8) & 0xffu))) << 16;
#endif
}

// fp16 constants of the integer decoders: 2^-j and -1024 * 2^-j, in both halves.
LB_HD constexpr uint32_t h2(uint32_t h) { return h | (h << 16); }
LB_HD constexpr uint32_t h2_pow2_neg(int j) { return h2(0x3c00u - 0x400u * uint32_t(j)); }
LB_HD constexpr uint32_t h2_neg1024_pow2_neg(int j) { return h2(0xe400u - 0x400u * uint32_t(j)); }
// -(1024 * 4^-j + 1) for ternary codes (c - 1): -1025, -257, -65, -17 (all exact in fp16).
LB_HD constexpr uint32_t h2_ternary_bias(int j) {
  constexpr uint32_t k[4] = {0xe401u, 0xdc04u, 0xd410u, 0xcc40u};
  return h2(k[j]);
}

// ---- per-codec decoders ------------------------------------------------------------------------------
// decode_kstep<C, S>(words, a): the four A registers of k-step S of a packet (S compile-time).

template <GpuCodec C, int S>
LB_HD void decode_kstep(const uint32_t* w, uint32_t* a) {
  if constexpr (C == GpuCodec::I8 || C == GpuCodec::MxI8) {
    constexpr uint32_t kMagic = 0x64646464u;      // fp16 0x64bb = 1024 + byte
    constexpr uint32_t kOne = h2(0x3c00u), kMinus1152 = h2(0xe480u);
    const uint32_t w0 = w[2 * S], w1 = w[2 * S + 1];
    a[0] = hfma2(byte_perm(w0, kMagic, 0x4140u), kOne, kMinus1152);
    a[1] = hfma2(byte_perm(w0, kMagic, 0x4342u), kOne, kMinus1152);
    a[2] = hfma2(byte_perm(w1, kMagic, 0x4140u), kOne, kMinus1152);
    a[3] = hfma2(byte_perm(w1, kMagic, 0x4342u), kOne, kMinus1152);
  } else if constexpr (C == GpuCodec::E4M3 || C == GpuCodec::MxE4M3) {
    const uint32_t w0 = w[2 * S], w1 = w[2 * S + 1];
    a[0] = cvt_e4m3x2(w0);
    a[1] = cvt_e4m3x2(w0 >> 16);
    a[2] = cvt_e4m3x2(w1);
    a[3] = cvt_e4m3x2(w1 >> 16);
  } else if constexpr (C == GpuCodec::E5M2 || C == GpuCodec::MxE5M2) {
    const uint32_t w0 = w[2 * S], w1 = w[2 * S + 1];
    a[0] = byte_perm(w0, 0u, 0x1404u);  // [0, b0, 0, b1]: E5M2 is the top byte of an fp16
    a[1] = byte_perm(w0, 0u, 0x3424u);
    a[2] = byte_perm(w1, 0u, 0x1404u);
    a[3] = byte_perm(w1, 0u, 0x3424u);
  } else if constexpr (C == GpuCodec::U4) {
    const uint32_t p0 = w[S], p1 = w[S] >> 8;  // byte planes: low and high byte of each half
    constexpr uint32_t kMagic = 0x64006400u;
    a[0] = hfma2(and_or(p0, 0x000f000fu, kMagic), h2_pow2_neg(0), h2_neg1024_pow2_neg(0));
    a[1] = hfma2(and_or(p0, 0x00f000f0u, kMagic), h2_pow2_neg(4), h2_neg1024_pow2_neg(4));
    a[2] = hfma2(and_or(p1, 0x000f000fu, kMagic), h2_pow2_neg(0), h2_neg1024_pow2_neg(0));
    a[3] = hfma2(and_or(p1, 0x00f000f0u, kMagic), h2_pow2_neg(4), h2_neg1024_pow2_neg(4));
  } else if constexpr (C == GpuCodec::U2 || C == GpuCodec::T2) {
    const uint32_t word = w[S / 2];
    constexpr uint32_t kMagic = 0x64006400u;
LB_UNROLL
    for (int r = 0; r < 4; ++r) {
      const int P = (S % 2) * 4 + r, j = P % 4;
      const uint32_t plane = (P / 4) ? word >> 8 : word;
      const uint32_t v = and_or(plane, 0x00030003u << (2 * j), kMagic);  // 1024 + c * 4^j
      a[r] = hfma2(v, h2_pow2_neg(2 * j), C == GpuCodec::T2 ? h2_ternary_bias(j) : h2_neg1024_pow2_neg(2 * j));
    }
  } else if constexpr (C == GpuCodec::U1) {
    const uint32_t word = w[S / 4];
    constexpr uint32_t kMagic = 0x64006400u;
LB_UNROLL
    for (int r = 0; r < 4; ++r) {
      const int P = (S % 4) * 4 + r, j = P % 8;
      const uint32_t plane = (P / 8) ? word >> 8 : word;
      a[r] = hfma2(and_or(plane, 0x00010001u << j, kMagic), h2_pow2_neg(j), h2_neg1024_pow2_neg(j));
    }
  } else if constexpr (C == GpuCodec::MxE2M1 || C == GpuCodec::NvE2M1) {
    // pair q: magnitude at bits 3q..3q+2, sign at e2m1_sign_bit(q) -> fp16 bits 9..11 and 15
    const uint32_t x = w[S];
    a[0] = (rotl32(x, 9) & 0x0e000e00u) | (rotl32(x, 2) & 0x80008000u);
    a[1] = (rotl32(x, 6) & 0x0e000e00u) | (rotl32(x, 1) & 0x80008000u);
    a[2] = rotl32(x, 3) & 0x8e008e00u;
    a[3] = x & 0x8e008e00u;
  } else if constexpr (C == GpuCodec::E3M2 || C == GpuCodec::E2M3 || C == GpuCodec::MxE3M2 ||
                       C == GpuCodec::MxE2M3) {
    constexpr bool e3 = C == GpuCodec::E3M2 || C == GpuCodec::MxE3M2;
    constexpr int t0 = e3 ? 8 : 7, t4 = e3 ? 12 : 11;  // fp16 positions of magnitude bit 0 and bit 4
    constexpr uint32_t nmask = e3 ? 0x0f000f00u : 0x07800780u, cmask = e3 ? 0x90009000u : 0x88008800u;
    const uint32_t nib = w[S], crumb = w[8 + S / 2];
LB_UNROLL
    for (int r = 0; r < 4; ++r) {
      const int slot = fp6_slot(e3, (S % 2) * 4 + r);
      a[r] = (rotl32(nib, (t0 - 4 * r + 32) % 32) & nmask) | (rotl32(crumb, (t4 - slot + 32) % 32) & cmask);
    }
  }
}

// ---- the integer tensor-core path (int8, int4, int2, int1, ternary weights; one token) ----------------
// mma.m16n8k32 with 8-bit integers (s32 += u8/s8 x s8, exact): lane (g, t) holds A bytes a0 = row g,
// k 4t..4t+3; a1 = row g+8, the same k; a2 / a3 the same rows at k 16+4t..; B bytes b0 = column g, k
// 4t..4t+3, b1 = k 16+4t.. (PTX ISA, "Matrix Fragments for mma.m16n8k32"). The packets of the fp16 path
// need no new layout: every byte of a lane's words holds codes of one row (g or g+8) and 2 columns per
// k-step apart from its neighbours', so masks (and shifts) turn 4 bytes into one A register of one row;
// the MMA takes those columns as its k 4t..4t+3 in the byte order, and x is staged in that same k order
// (imma_x_offset), so the products pair up. MMA "blocks" (imma_a's q) are numbered along K.
// x itself enters as 4 signed bytes (limbs) of one fixed-point number per element: with one power-of-two
// scale per token, n = rint(x 2^-e 2^24) (|x 2^-e| < 64) = l0 + l1 2^8 + l2 2^16 + l3 2^24, l_i in
// [-128, 127]. B column n holds limb n % 4 (columns 4..7 repeat 0..3; their products are not used).
LB_HD constexpr bool has_imma(GpuCodec c) {
  return c == GpuCodec::U4 || c == GpuCodec::I8 || c == GpuCodec::U2 || c == GpuCodec::T2 || c == GpuCodec::U1;
}
// MMAs per packet and the 32-column scale units one MMA spans (int1: two, so its groups must be >= 64).
LB_HD constexpr int imma_blocks(GpuCodec c) {
  return c == GpuCodec::I8 ? 1 : c == GpuCodec::U4 ? 2 : c == GpuCodec::U1 ? 8 : 4;
}
LB_HD constexpr int imma_units(GpuCodec c) { return c == GpuCodec::U1 ? 2 : 1; }

// The A registers of block q of a packet (this lane's 4 words).
//  * U4: a word's low nibbles are row g's codes of columns 2t, 2t+8, 2t+1, 2t+9 of its k-step, its high
//    nibbles row g+8's (times 16, not shifted: the 16 is divided out of that row's sums, exactly).
//  * I8: two bytes of each of two words per row; stored offset-binary, XOR makes them s8.
//  * U2 / T2: crumb j of every byte: j = 0 row g, 1 row g+8 (columns 2t, 2t+1 of the word's two k-steps),
//    2, 3 the same at 2t+8: one word, one MMA.
//  * U1: bit j of every byte: j & 3 as U2's crumbs, j >> 2 the k-step within the byte's pair; bits 0, 1,
//    4, 5 (columns 2t..) are one MMA, bits 2, 3, 6, 7 (2t+8..) the next.
template <GpuCodec C>
LB_HD void imma_a(const uint32_t* w, int q, uint32_t* a) {
  static_assert(has_imma(C), "integer codecs only");
  if constexpr (C == GpuCodec::U4) {
    a[0] = w[2 * q] & 0x0f0f0f0fu;
    a[1] = w[2 * q] & 0xf0f0f0f0u;
    a[2] = w[2 * q + 1] & 0x0f0f0f0fu;
    a[3] = w[2 * q + 1] & 0xf0f0f0f0u;
  } else if constexpr (C == GpuCodec::I8) {
    a[0] = byte_perm(w[0], w[1], 0x5410u) ^ 0x80808080u;  // row g: columns 2t, 2t+1, 2t+8, 2t+9
    a[1] = byte_perm(w[0], w[1], 0x7632u) ^ 0x80808080u;  // row g+8
    a[2] = byte_perm(w[2], w[3], 0x5410u) ^ 0x80808080u;  // the same of k-step 1
    a[3] = byte_perm(w[2], w[3], 0x7632u) ^ 0x80808080u;
  } else if constexpr (C == GpuCodec::U2 || C == GpuCodec::T2) {
    const uint32_t x = w[q];
    a[0] = x & 0x03030303u;
    a[1] = (x >> 2) & 0x03030303u;
    a[2] = (x >> 4) & 0x03030303u;
    a[3] = (x >> 6) & 0x03030303u;
  } else {
    const uint32_t x = w[q >> 1] >> (2 * (q & 1));
    a[0] = x & 0x01010101u;
    a[1] = (x >> 1) & 0x01010101u;
    a[2] = (x >> 4) & 0x01010101u;
    a[3] = (x >> 5) & 0x01010101u;
  }
}

// Byte offset of limb `limb` of column k in the staged x: 128 bytes per MMA block; in it lane t's 8-byte
// B pair (b0, b1) of column n = limb, at the MMA k position (h, byte b) the A side gives column k.
LB_HD int64_t imma_x_offset(GpuCodec c, int64_t k, int limb) {
  const int i = int(k & 15), t = (i & 7) >> 1;
  int64_t blk;
  int h, b;
  if (c == GpuCodec::U4) {  // blocks of 32 columns: k-steps (h) of 16
    blk = k >> 5, h = int(k >> 4) & 1, b = ((i & 1) << 1) | (i >> 3);
  } else if (c == GpuCodec::I8) {
    blk = k >> 5, h = int(k >> 4) & 1, b = (i & 1) | ((i >> 3) << 1);
  } else if (c == GpuCodec::U1) {  // words of 64 columns: two blocks (columns 0-7 / 8-15 of each k-step)
    const int s = int(k >> 4) & 3;
    blk = (k >> 6) * 2 + (i >> 3), h = s & 1, b = ((i & 1) << 1) | (s >> 1);
  } else {  // U2, T2: words of 32 columns, one block; h: columns 0-7 / 8-15 of the two k-steps
    blk = k >> 5, h = i >> 3, b = ((i & 1) << 1) | (int(k >> 4) & 1);
  }
  return blk * 128 + (t * 4 + limb) * 8 + h * 4 + b;
}
// Chunks of 4 columns apart of the two pairs of columns of one A register (the staging's lane pairs).
LB_HD constexpr int imma_pair_chunks(GpuCodec c) {
  return c == GpuCodec::U4 || c == GpuCodec::I8 ? 2 : c == GpuCodec::U1 ? 8 : 4;
}

// The 4 limbs of v (|v| < 64), as the bytes of one word: n = rint(v 2^24) (|n| < 2^30, |n 2^-24 - v| <=
// 2^-25), then the balanced base-256 digits of n: adding 0x808080 moves the three low digits from [-128, 127]
// to [0, 255] (where they are n's plain bytes), XOR 0x80 per byte moves them back, two's complement bytes.
LB_HD uint32_t x_limbs_scaled(float v24) {  // v24 = v 2^24 (the staging folds 2^24 into its scale)
#if defined(__CUDA_ARCH__)
  const int n = __float2int_rn(v24);
#else
  const int n = int(std::lrintf(v24));
#endif
  return (uint32_t(n) + 0x808080u) ^ 0x808080u;
}
LB_HD uint32_t x_limbs(float v) { return x_limbs_scaled(v * 16777216.0f); }

// The staged words of x for one lane pair: the limbs (x_limbs) of columns k0 + {0, 1} (X0, X1) and
// k0 + d + {0, 1} (Y0, Y1), d = 4 imma_pair_chunks: word j (= B column j) holds limb j of the four, in the
// byte order the codec's A registers (imma_a) give those columns.
template <GpuCodec C>
LB_HD void limb_words(uint32_t X0, uint32_t X1, uint32_t Y0, uint32_t Y1, uint32_t* w) {
  // I8 orders the columns k0, k0+1, k0+d, k0+d+1; the others k0, k0+d, k0+1, k0+d+1
  constexpr bool kI8 = C == GpuCodec::I8;
  const uint32_t a0 = X0, a1 = kI8 ? X1 : Y0, b0 = kI8 ? Y0 : X1, b1 = Y1;
  const uint32_t P = byte_perm(a0, a1, 0x5140u), Q = byte_perm(a0, a1, 0x7362u);  // limbs 0, 1 / 2, 3
  const uint32_t R = byte_perm(b0, b1, 0x5140u), S = byte_perm(b0, b1, 0x7362u);
  w[0] = byte_perm(P, R, 0x5410u);
  w[1] = byte_perm(P, R, 0x7632u);
  w[2] = byte_perm(Q, S, 0x5410u);
  w[3] = byte_perm(Q, S, 0x7632u);
}

// Ternary-1.6 table entry for byte value v: trits d_i - 1 as fp16 pairs {d0,d1}, {d2,d3}, {d4, 0}.
struct T5Entry {
  uint32_t p01, p23, p4, pad;
};
LB_HD T5Entry t5_entry(uint32_t v) {
  uint32_t h[5];
  for (int i = 0; i < 5; ++i, v /= 3) {
    const int d = int(v % 3) - 1;
    h[i] = d == 0 ? 0u : (d > 0 ? 0x3c00u : 0xbc00u);
  }
  return {h[0] | h[1] << 16, h[2] | h[3] << 16, h[4], 0u};
}

// Ternary-1.6: all 10 k-steps of a packet. `lut(v)` returns t5_entry(v) (a shared-memory table on the
// device).
template <typename Lut>
LB_HD void decode_t5_packet(const uint32_t* w, uint32_t (*a)[4], const Lut& lut) {
LB_UNROLL
  for (int h = 0; h < 2; ++h) {      // stream: row g (bytes 0..7) or row g+8 (bytes 8..15)
LB_UNROLL
    for (int q = 0; q < 4; ++q) {    // bytes 2q, 2q+1 of the stream: stream pairs 5q..5q+4
      const int b0 = 8 * h + 2 * q, b1 = b0 + 1;
      const T5Entry e0 = lut((w[b0 / 4] >> (8 * (b0 % 4))) & 0xffu);
      const T5Entry e1 = lut((w[b1 / 4] >> (8 * (b1 % 4))) & 0xffu);
      const uint32_t pairs[5] = {e0.p01, e0.p23, byte_perm(e0.p4, e1.p01, 0x5410u), byte_perm(e1.p01, e1.p23, 0x5432u),
                                 byte_perm(e1.p23, e1.p4, 0x5432u)};
LB_UNROLL
      for (int i = 0; i < 5; ++i) {
        const int pi = 5 * q + i;          // stream pair index: k-step pi / 2, column half pi % 2
        a[pi / 2][h + 2 * (pi % 2)] = pairs[i];
      }
    }
  }
}

// ---- the B operand (x) and the scale folds, shared by the kernel and the host emulation test ------------

// x of a K-tile is staged per token and part (hi / lo) as fp16 pairs: the pair of tile-local columns
// (kk, kk+1), kk even, sits at this 32-bit word, so that lane t of k-step s reads its two B registers
// (rows 2t, 2t+1 and 2t+8, 2t+9 of the 16 x 8 operand) as one 8-byte load at b_frag_word(s, t).
LB_HD int b_pair_word(int kk) {
  const int s = kk / 16, c = kk % 16;
  return 8 * s + 2 * ((c % 8) / 2) + c / 8;
}
LB_HD int b_frag_word(int s, int t) { return 8 * s + 2 * t; }

// E8M0 scale byte -> fp32 (0x00 is 2^-127, a subnormal; 0xFF is NaN), as E8M0::decode.
LB_HD float e8m0_value(uint32_t b) {
  return b == 0xffu ? bits_f32(0x7fc00000u) : (b == 0u ? bits_f32(0x00400000u) : bits_f32(b << 23));
}
// Affine scale entry (bf16 s | bf16 m << 16) -> s, m (bf16 is the top half of an fp32).
LB_HD void affine_entry(uint32_t v, float* s, float* m) {
  *s = bits_f32(v << 16);
  *m = bits_f32(v & 0xffff0000u);
}
// Two E4M3 block scales (rows g, g+8) -> fp32.
LB_HD void nv_scales(uint32_t two_codes, float* f0, float* f1) {
  const uint32_t hh = cvt_e4m3x2(two_codes);
#if defined(__CUDA_ARCH__)
  *f0 = __half2float(__ushort_as_half(uint16_t(hh & 0xffffu)));
  *f1 = __half2float(__ushort_as_half(uint16_t(hh >> 16)));
#else
  *f0 = f16_to_f32(uint16_t(hh & 0xffffu));
  *f1 = f16_to_f32(uint16_t(hh >> 16));
#endif
}

// Position of the i-th fp16 of A register `reg` of a lane in the 16x16 tile of a k-step (PTX ISA,
// mma.m16n8k16 .f16 A fragment): row and column.
LB_HD void a_frag_element(int lane, int reg, int half, int* row, int* col) {
  const int g = lane / 4, t = lane % 4;
  *row = g + 8 * (reg % 2);
  *col = 2 * t + half + 8 * (reg / 2);
}

}  // namespace lowbit::cuda

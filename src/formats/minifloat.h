// Element codecs of the low-bit float types (host and device): FP8 E4M3/E5M2, FP6 E3M2/E2M3, FP4 E2M1,
// the E8M0 MX scale and the MXINT8 element. Encoding is round-to-nearest-even with saturation to ±max
// (no Inf is produced); definitions in docs/formats.md.
#pragma once
#include <cmath>
#include <cstdint>

#include "util/half.h"
#include "util/hd.h"

namespace lowbit {

// A sign-magnitude minifloat with E exponent bits, M mantissa bits and bias B. `max_mag` is the largest
// finite magnitude code (without sign); `nan_code` the code used for NaN (0 when the type has none).
template <int E_, int M_, int B_, uint32_t MaxMag, uint32_t NanCode, bool HasInfNan>
struct MiniFloat {
  static constexpr int E = E_, M = M_, B = B_;
  static constexpr uint32_t kSignBit = 1u << (E + M);
  static constexpr uint32_t kMaxMag = MaxMag;
  static constexpr uint32_t kNan = NanCode;

  LB_HD static float decode(uint32_t code) {
    const uint32_t sign = code & kSignBit;
    const uint32_t mag = code & (kSignBit - 1);
    const uint32_t exp = mag >> M;
    const uint32_t man = mag & ((1u << M) - 1);
    float v;
    if constexpr (HasInfNan) {
      if (E == 5 && exp == 31) {  // E5M2: IEEE-style Inf/NaN
        v = man ? NAN : INFINITY;
        return sign ? -v : v;
      }
      if (E == 4 && mag == 0x7f) return NAN;  // E4M3 "fn": only S.1111.111 is NaN
    }
    if (exp == 0) {
      v = float(man) * exp2i(1 - B - M);  // subnormal: man * 2^(1-B-M)
    } else {
      v = bits_f32(uint32_t(exp - B + 127) << 23 | (man << (23 - M)));
    }
    return sign ? -v : v;
  }

  LB_HD static float max_value() { return decode(kMaxMag); }

  // RNE with saturation; NaN -> kNan (0 for types without NaN: callers handle NaN at the block level).
  LB_HD static uint32_t encode(float x) {
    const uint32_t xb = f32_bits(x);
    const uint32_t sign = (xb >> 31) ? kSignBit : 0u;
    const uint32_t ab = xb & 0x7fffffffu;
    if (ab > 0x7f800000u) return kNan;
    const float a = bits_f32(ab);
    if (a >= max_value()) return sign | kMaxMag;  // saturate (Inf too)
    const int e = int(ab >> 23) - 127;            // floor(log2 a) for normal fp32 (a < 2^-126 -> subnormal path)
    const int emin = 1 - B;                       // exponent of the smallest normal
    uint32_t mag;
    if (e < emin) {
      // subnormal grid: multiples of 2^(emin - M); a / quantum is exact (power-of-two scaling)
      const float n = rint_even(a * exp2i(M - emin));
      mag = uint32_t(n);  // n == 2^M lands on the smallest normal: the encoding is the same integer
    } else {
      const float n = rint_even(a * exp2i(M - e));  // in [2^M, 2^(M+1)]
      uint32_t ni = uint32_t(n);
      int ee = e;
      if (ni == (1u << (M + 1))) { ni >>= 1; ++ee; }  // rounded up into the next binade
      mag = (uint32_t(ee + B) << M) | (ni - (1u << M));
    }
    return sign | mag;
  }

  LB_HD static float round(float x) { return decode(encode(x)); }

  // 2^k for k in [-149, 127] built from bits (exact, no libm).
  LB_HD static float exp2i(int k) {
    if (k >= -126) return bits_f32(uint32_t(k + 127) << 23);
    return bits_f32(1u << (k + 149));
  }
  LB_HD static float rint_even(float v) {
#if defined(__CUDA_ARCH__)
    return rintf(v);
#else
    return std::nearbyint(v);  // default FP environment rounds to nearest even
#endif
  }
};

using FP8E4M3 = MiniFloat<4, 3, 7, 0x7e, 0x7f, true>;   // max 448, NaN = S.1111.111
using FP8E5M2 = MiniFloat<5, 2, 15, 0x7b, 0x7e, true>;  // max 57344 (S.11110.11), NaN 0x7e
using FP6E3M2 = MiniFloat<3, 2, 3, 0x1f, 0, false>;     // max 28
using FP6E2M3 = MiniFloat<2, 3, 1, 0x1f, 0, false>;     // max 7.5
using FP4E2M1 = MiniFloat<2, 1, 1, 0x7, 0, false>;      // max 6: codes 0..7 = 0 .5 1 1.5 2 3 4 6

// emax_elem: exponent of the element type's largest normal (MX FLOOR rule: shared_exp = floor(log2 amax) - emax).
template <typename T>
LB_HD constexpr int emax_elem() {
  return (int(T::kMaxMag >> T::M)) - T::B;
}

// E8M0: an unsigned power-of-two exponent with bias 127; 0xFF is NaN; no zero, no sign.
struct E8M0 {
  static constexpr uint8_t kNan = 0xff;
  LB_HD static float decode(uint8_t b) {
    if (b == kNan) return NAN;
    if (b == 0) return bits_f32(0x00400000u);  // 2^-127 is an fp32 subnormal
    return bits_f32(uint32_t(b) << 23);
  }
  // The MX FLOOR rule for a block: shared_exp = floor(log2(amax)) - emax_elem, clamped to [-127, 127].
  // amax == 0 -> 0x00; non-finite amax -> 0xFF.
  LB_HD static uint8_t floor_scale(float amax, int emax) {
    const uint32_t ab = f32_bits(amax) & 0x7fffffffu;
    if (ab >= 0x7f800000u) return kNan;
    if (ab == 0) return 0;
    int e;
    if (ab < 0x00800000u) {  // fp32 subnormal amax: floor(log2) from the highest set mantissa bit
      int hb = 31;
      while (!((ab >> hb) & 1u)) --hb;
      e = hb - 149;
    } else {
      e = int(ab >> 23) - 127;
    }
    int s = e - emax;
    if (s < -127) s = -127;
    if (s > 127) s = 127;
    return uint8_t(s + 127);
  }
  // The RCEIL rule (NVIDIA): descale = amax / max_elem; byte = its fp32 exponent field, +1 when its
  // mantissa is non-zero (fp32 subnormals: +1 only when mantissa > 0x400000); non-finite -> 0xFF.
  LB_HD static uint8_t rceil_from_descale_bits(uint32_t db) {
    db &= 0x7fffffffu;
    if (db >= 0x7f800000u) return kNan;
    uint32_t exp = db >> 23, man = db & 0x7fffffu;
    uint32_t r;
    if (exp == 0) r = man > 0x400000u ? 1u : 0u;
    else r = exp + (man ? 1u : 0u);
    return uint8_t(r > 0xffu ? 0xffu : r);
  }
  LB_HD static uint8_t rceil_scale(float amax, float max_elem) {
    return rceil_from_descale_bits(f32_bits(amax / max_elem));
  }
};

// MXINT8 element: int8 k means k / 64 (k in [-127, 127]).
struct MXInt8Elem {
  LB_HD static float decode(uint8_t code) { return float(int8_t(code)) * (1.0f / 64.0f); }
  LB_HD static uint8_t encode(float v) {  // v is already divided by the block scale
    if (v != v) return 0;
    float k = FP4E2M1::rint_even(v * 64.0f);
    if (k > 127.0f) k = 127.0f;
    if (k < -127.0f) k = -127.0f;
    return uint8_t(int8_t(k));
  }
};

// The FP4 E2M1 values by code (bit 3 = sign), for table-driven decoders.
inline constexpr float kE2M1Values[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                          -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

}  // namespace lowbit

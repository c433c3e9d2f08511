// bf16 and IEEE fp16 <-> fp32 conversions with round-to-nearest-even; host and device.
#pragma once
#include <cstdint>
#include <cstring>

#include "util/hd.h"

namespace lowbit {

LB_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
LB_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// bf16 is the top half of an fp32: widening is a shift.
LB_HD float bf16_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

LB_HD uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays a (quiet) NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // RNE: add half-ulp minus one, plus the lsb for ties
  return uint16_t(u >> 16);
}

LB_HD float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

LB_HD float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));  // Inf/NaN
  if (exp == 0) {
    if (man == 0) return bits_f32(sign);
    // subnormal: value = man * 2^-24, exact in fp32
    float v = float(man) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

LB_HD uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: Inf (IEEE cast)
  if (a >= 0x38800000u) {                                  // normal in fp16 (>= 2^-14)
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1u) - (112u << 23);
    return uint16_t(sign | (r >> 13));
  }
  // subnormal or zero in fp16: quantum 2^-24; RNE through the fp32 adder trick (0.5 + x keeps the bits)
  float af = bits_f32(a);
  float t = af + 0.5f;  // 0.5 has ulp 2^-24: the sum rounds x to a multiple of 2^-24 with RNE
  return uint16_t(sign | (f32_bits(t) - 0x3f000000u));
}

LB_HD float round_f16(float f) { return f16_to_f32(f32_to_f16(f)); }

}  // namespace lowbit

// Element codecs: exhaustive decode/encode round trips of every 8-bit-or-smaller code, RNE with ties to
// even and saturation against a brute-force search, the E8M0 scale rules, bf16/fp16 casts.
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "formats/codec.h"
#include "formats/minifloat.h"
#include "formats_test_util.h"
#include "util/half.h"
#include "util/rng.h"

namespace lowbit {
namespace {

using test::code_is_even;
using test::elem_value;
using test::valid_codes;

template <typename T>
void check_roundtrip_all_codes(ElemType e, uint32_t ncodes) {
  int finite = 0;
  for (uint32_t c = 0; c < ncodes; ++c) {
    const float v = T::decode(c);
    if (!std::isfinite(v)) continue;
    ++finite;
    EXPECT_EQ(T::encode(v), c) << "code " << c << " value " << v;
  }
  EXPECT_GT(finite, int(ncodes) / 2);
}

TEST(FormatsElements, ExhaustiveRoundTripEveryCode) {
  check_roundtrip_all_codes<FP8E4M3>(ElemType::E4M3, 256);
  check_roundtrip_all_codes<FP8E5M2>(ElemType::E5M2, 256);
  check_roundtrip_all_codes<FP6E3M2>(ElemType::E3M2, 64);
  check_roundtrip_all_codes<FP6E2M3>(ElemType::E2M3, 64);
  check_roundtrip_all_codes<FP4E2M1>(ElemType::E2M1, 16);
  for (uint32_t c = 0; c < 256; ++c) {
    if (c == 0x80) continue;  // k = -128 is outside MXINT8's [-127, 127]
    EXPECT_EQ(MXInt8Elem::encode(MXInt8Elem::decode(uint8_t(c))), c);
  }
}

TEST(FormatsElements, LookupTablesMatchCodecs) {
  const ElemLuts& L = elem_luts();
  for (uint32_t c = 0; c < 256; ++c) {
    for (auto [tab, e] : {std::pair{L.e4m3, ElemType::E4M3}, std::pair{L.e5m2, ElemType::E5M2},
                          std::pair{L.mxi8, ElemType::MXI8}, std::pair{L.i8, ElemType::I8}}) {
      const float a = tab[c], b = elem_value(e, c);
      EXPECT_TRUE(std::memcmp(&a, &b, 4) == 0 || (std::isnan(a) && std::isnan(b))) << int(e) << " code " << c;
    }
    uint32_t b = c;
    for (int t = 0; t < 5; ++t, b /= 3) EXPECT_EQ(L.t5[c][t], int(b % 3) - 1);
  }
  for (uint32_t c = 0; c < 64; ++c) {
    EXPECT_EQ(L.e3m2[c], FP6E3M2::decode(c));
    EXPECT_EQ(L.e2m3[c], FP6E2M3::decode(c));
  }
  for (uint32_t c = 0; c < 16; ++c) EXPECT_EQ(L.e2m1[c], kE2M1Values[c]);
}

TEST(FormatsElements, TableOneFacts) {
  // FORMATS.md element table: max normal, min normal, min subnormal
  EXPECT_EQ(FP8E4M3::max_value(), 448.0f);
  EXPECT_EQ(FP8E5M2::max_value(), 57344.0f);
  EXPECT_EQ(FP6E3M2::max_value(), 28.0f);
  EXPECT_EQ(FP6E2M3::max_value(), 7.5f);
  EXPECT_EQ(FP4E2M1::max_value(), 6.0f);
  EXPECT_EQ(FP8E4M3::decode(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(FP8E4M3::decode(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(FP8E5M2::decode(0x04), std::ldexp(1.0f, -14));
  EXPECT_EQ(FP8E5M2::decode(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(FP6E3M2::decode(0x04), 0.25f);
  EXPECT_EQ(FP6E3M2::decode(0x01), 0.0625f);
  EXPECT_EQ(FP6E2M3::decode(0x08), 1.0f);
  EXPECT_EQ(FP6E2M3::decode(0x01), 0.125f);
  EXPECT_TRUE(std::isnan(FP8E4M3::decode(0x7f)));
  EXPECT_TRUE(std::isnan(FP8E4M3::decode(0xff)));
  EXPECT_TRUE(std::isinf(FP8E5M2::decode(0x7c)));
  EXPECT_TRUE(std::isnan(FP8E5M2::decode(0x7e)));
  EXPECT_EQ(emax_elem<FP8E4M3>(), 8);
  EXPECT_EQ(emax_elem<FP8E5M2>(), 15);
  EXPECT_EQ(emax_elem<FP6E3M2>(), 4);
  EXPECT_EQ(emax_elem<FP6E2M3>(), 2);
  EXPECT_EQ(emax_elem<FP4E2M1>(), 2);
}

// Brute force: the nearest finite code (ties to the even code); values beyond max saturate.
template <typename T>
uint32_t brute_force_encode(ElemType e, float x) {
  uint32_t best = 0;
  double bd = INFINITY;
  for (uint32_t c : valid_codes(e)) {
    const float v = T::decode(c);
    if (std::signbit(v) != std::signbit(x) && v != 0.0f) continue;
    if (v == 0.0f && std::signbit(v) != std::signbit(x)) continue;  // zero keeps x's sign
    const double d = std::fabs(double(v) - double(x));
    if (d < bd || (d == bd && code_is_even(e, c) && !code_is_even(e, best))) {
      bd = d;
      best = c;
    }
  }
  return best;
}

template <typename T>
void check_encode_vs_brute_force(ElemType e, uint64_t seed) {
  // all midpoints between neighbouring grid values (exact ties), the values themselves, and random values
  std::vector<float> vals;
  std::vector<float> grid;
  for (uint32_t c : valid_codes(e)) grid.push_back(T::decode(c));
  std::sort(grid.begin(), grid.end());
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    vals.push_back(grid[i]);
    vals.push_back(0.5f * (grid[i] + grid[i + 1]));  // exact: both share few mantissa bits
    vals.push_back(std::nextafter(0.5f * (grid[i] + grid[i + 1]), INFINITY));
    vals.push_back(std::nextafter(0.5f * (grid[i] + grid[i + 1]), -INFINITY));
  }
  Rng rng(seed);
  const float mx = T::max_value();
  for (int i = 0; i < 4000; ++i) vals.push_back((rng.uniform() * 2.0f - 1.0f) * mx * 1.2f);
  for (int i = 0; i < 1000; ++i) vals.push_back(std::ldexp(rng.uniform() - 0.5f, -int(rng.next_u32() % 24)));
  for (float x : vals) {
    if (std::fabs(x) > mx) {
      EXPECT_EQ(T::decode(T::encode(x)), std::copysign(mx, x)) << "saturation of " << x;
      continue;
    }
    EXPECT_EQ(T::encode(x), brute_force_encode<T>(e, x)) << "x = " << x;
  }
  EXPECT_EQ(T::decode(T::encode(INFINITY)), mx);
  EXPECT_EQ(T::decode(T::encode(-INFINITY)), -mx);
  EXPECT_EQ(T::encode(NAN), T::kNan);
}

TEST(FormatsElements, EncodeIsNearestTiesToEvenWithSaturation) {
  check_encode_vs_brute_force<FP8E4M3>(ElemType::E4M3, 1);
  check_encode_vs_brute_force<FP8E5M2>(ElemType::E5M2, 2);
  check_encode_vs_brute_force<FP6E3M2>(ElemType::E3M2, 3);
  check_encode_vs_brute_force<FP6E2M3>(ElemType::E2M3, 4);
  check_encode_vs_brute_force<FP4E2M1>(ElemType::E2M1, 5);
}

TEST(FormatsElements, KnownRoundings) {
  EXPECT_EQ(FP4E2M1::decode(FP4E2M1::encode(2.5f)), 2.0f);   // tie -> even code 4 (2.0), not 5 (3.0)
  EXPECT_EQ(FP4E2M1::decode(FP4E2M1::encode(3.5f)), 4.0f);   // tie -> even code 6 (4.0)
  EXPECT_EQ(FP4E2M1::decode(FP4E2M1::encode(0.25f)), 0.0f);  // tie -> code 0
  EXPECT_EQ(FP4E2M1::decode(FP4E2M1::encode(5.0f)), 4.0f);   // tie 4|6 -> code 6 (4.0) is even
  EXPECT_EQ(FP4E2M1::decode(FP4E2M1::encode(7.0f)), 6.0f);   // saturation
  EXPECT_EQ(FP8E4M3::encode(464.0f), 0x7eu);                 // saturates, never NaN
  EXPECT_EQ(FP8E4M3::encode(240.0f), 0x77u);
  EXPECT_EQ(MXInt8Elem::encode(2.0f), 127u);                 // clamps to k = 127
  EXPECT_EQ(uint8_t(MXInt8Elem::encode(-2.0f)), uint8_t(int8_t(-127)));
  EXPECT_EQ(MXInt8Elem::encode(1.0f / 128.0f), 0u);          // k = 0.5 -> 0 (even)
  EXPECT_EQ(MXInt8Elem::encode(3.0f / 128.0f), 2u);          // k = 1.5 -> 2 (even)
}

TEST(FormatsElements, E8M0RceilKnownVectors) {
  // FORMATS.md / torchao test vectors: fp32 bits of descale -> scale byte
  const std::pair<uint32_t, uint8_t> table[] = {
      {0x00000000u, 0},   {0x00400000u, 0},   {0x00400001u, 1},   {0x00800000u, 1},   {0x3F7FFFFFu, 127},
      {0x3F800000u, 127}, {0x3F800001u, 128}, {0x7F000000u, 254}, {0x7F000001u, 255}, {0x7F800000u, 255},
      {0x7FC00000u, 255}};
  for (auto [bits, byte] : table) EXPECT_EQ(E8M0::rceil_from_descale_bits(bits), byte) << std::hex << bits;
}

TEST(FormatsElements, E8M0FloorAndDecode) {
  EXPECT_EQ(E8M0::floor_scale(448.0f, 8), 127);
  EXPECT_EQ(E8M0::floor_scale(480.0f, 8), 127);
  EXPECT_EQ(E8M0::floor_scale(7.0f, 2), 127);
  EXPECT_EQ(E8M0::floor_scale(8.0f, 2), 128);
  EXPECT_EQ(E8M0::floor_scale(0.0f, 2), 0);
  EXPECT_EQ(E8M0::floor_scale(INFINITY, 2), 0xff);
  EXPECT_EQ(E8M0::floor_scale(NAN, 2), 0xff);
  EXPECT_EQ(E8M0::floor_scale(std::ldexp(1.0f, -140), 2), 0);   // clamped to -127
  EXPECT_EQ(E8M0::floor_scale(std::ldexp(1.5f, -130), 0), 0);   // fp32 subnormal: floor(log2) = -130
  EXPECT_EQ(E8M0::floor_scale(std::ldexp(1.0f, -120), 0), 7);   // -120 + 127
  EXPECT_EQ(E8M0::floor_scale(std::ldexp(1.0f, 127), 0), 254);
  EXPECT_EQ(E8M0::floor_scale(std::ldexp(1.0f, 127), 8), 246);
  for (int b = 1; b < 255; ++b) EXPECT_EQ(E8M0::decode(uint8_t(b)), std::ldexp(1.0f, b - 127));
  EXPECT_EQ(E8M0::decode(0), std::ldexp(1.0f, -127));
  EXPECT_TRUE(std::isnan(E8M0::decode(0xff)));
}

TEST(FormatsElements, HalfCastsRoundToNearestEven) {
  // every finite fp16 code round-trips; bf16 likewise on a sweep
  for (uint32_t h = 0; h < 65536; ++h) {
    const float v = f16_to_f32(uint16_t(h));
    if (!std::isnan(v)) {
      EXPECT_EQ(f32_to_f16(v), h);
    }
    const float b = bf16_to_f32(uint16_t(h));
    if (!std::isnan(b)) {
      EXPECT_EQ(f32_to_bf16(b), h);
    }
  }
  // ties: 1 + 2^-11 lies halfway between fp16 1 and 1 + 2^-10 -> 1 (even); 1 + 3*2^-11 -> 1 + 2^-9
  EXPECT_EQ(round_f16(1.0f + std::ldexp(1.0f, -11)), 1.0f);
  EXPECT_EQ(round_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 1.0f + std::ldexp(1.0f, -9));
  EXPECT_EQ(round_bf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);
  EXPECT_EQ(round_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isinf(round_f16(65520.0f)));  // IEEE cast overflows to Inf
  EXPECT_EQ(round_f16(65519.0f), 65504.0f);
  EXPECT_EQ(round_f16(std::ldexp(1.0f, -25)), 0.0f);                           // tie -> 0
  EXPECT_EQ(round_f16(std::ldexp(1.5f, -25)), std::ldexp(1.0f, -24));           // rounds up to min subnormal
  EXPECT_TRUE(std::isnan(round_bf16(NAN)));
}

}  // namespace
}  // namespace lowbit

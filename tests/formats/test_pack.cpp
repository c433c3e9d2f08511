// Canonical packing (format.h): code put/get round trips on odd lengths, and the byte layouts spelled out
// in the registry comment (low nibble first, 6-bit 24-bit words, 5 trits per byte).
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "formats/codec.h"
#include "formats/format.h"
#include "util/rng.h"

namespace lowbit {
namespace {

uint32_t code_limit(ElemType e) {
  switch (e) {
    case ElemType::U4:
    case ElemType::E2M1: return 16;
    case ElemType::U2:
    case ElemType::T2: return 4;
    case ElemType::U1: return 2;
    case ElemType::E3M2:
    case ElemType::E2M3: return 64;
    case ElemType::T5: return 3;
    default: return 256;
  }
}

TEST(FormatsPack, PutGetRoundTripAllFormats) {
  Rng rng(7);
  for (const FormatInfo& fi : all_formats()) {
    if (fi.scheme == ScaleScheme::None) continue;
    for (int64_t cols : {1, 2, 3, 5, 7, 31, 33, 97, 160, 161}) {
      std::vector<uint8_t> row(row_code_bytes(fi.id, cols) + 1, 0);  // one guard byte
      std::vector<uint32_t> codes(static_cast<size_t>(cols));
      for (auto& c : codes) c = rng.next_u32() % code_limit(fi.elem);
      for (int64_t j = 0; j < cols; ++j) put_code(row.data(), fi.elem, j, codes[size_t(j)]);
      EXPECT_EQ(row.back(), 0) << fi.name << ": wrote past the row's " << row.size() - 1 << " bytes";
      for (int64_t j = 0; j < cols; ++j) EXPECT_EQ(get_code(row.data(), fi.elem, j), codes[size_t(j)]) << fi.name << " j=" << j;
    }
  }
}

TEST(FormatsPack, ByteLayouts) {
  uint8_t b[8] = {};
  put_code(b, ElemType::U4, 0, 0x3);
  put_code(b, ElemType::U4, 1, 0xA);
  EXPECT_EQ(b[0], 0xA3);  // element 2i in the low nibble
  std::fill(std::begin(b), std::end(b), 0);
  for (int j = 0; j < 4; ++j) put_code(b, ElemType::U2, j, uint32_t(j));
  EXPECT_EQ(b[0], 0b11100100);
  std::fill(std::begin(b), std::end(b), 0);
  put_code(b, ElemType::U1, 0, 1);
  put_code(b, ElemType::U1, 7, 1);
  put_code(b, ElemType::U1, 9, 1);
  EXPECT_EQ(b[0], 0x81);
  EXPECT_EQ(b[1], 0x02);
  // 6-bit: elements 4i..4i+3 at bits 6t of the little-endian 24-bit word of bytes 3i..3i+2
  std::fill(std::begin(b), std::end(b), 0);
  const uint32_t six[4] = {0x21, 0x3f, 0x05, 0x2a};
  for (int j = 0; j < 4; ++j) put_code(b, ElemType::E3M2, j, six[j]);
  const uint32_t word = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16;
  for (int t = 0; t < 4; ++t) EXPECT_EQ((word >> (6 * t)) & 0x3f, six[t]);
  // ternary-1.6: byte = sum_t digit_t * 3^t
  std::fill(std::begin(b), std::end(b), 0);
  const uint32_t trits[5] = {2, 0, 1, 2, 1};
  for (int j = 0; j < 5; ++j) put_code(b, ElemType::T5, j, trits[j]);
  EXPECT_EQ(b[0], 2 + 0 * 3 + 1 * 9 + 2 * 27 + 1 * 81);
  EXPECT_EQ(row_code_bytes(Format::TERNARY_P5, 11), 3u);  // partial last byte
  EXPECT_EQ(row_code_bytes(Format::FP6_E3M2, 5), 4u);     // 30 bits
  EXPECT_EQ(row_code_bytes(Format::INT1, 9), 2u);
}

TEST(FormatsPack, DecodeElemsAnyRangeMatchesGetCode) {
  // decode_elems with unaligned starts and ends equals element-by-element decoding
  Rng rng(11);
  for (ElemType e : {ElemType::U4, ElemType::U2, ElemType::U1, ElemType::T2, ElemType::T5, ElemType::E2M1,
                     ElemType::E3M2, ElemType::E2M3, ElemType::E4M3, ElemType::I8}) {
    std::vector<uint8_t> row(64);
    for (auto& x : row) x = uint8_t(rng.next_u32());
    if (e == ElemType::T5)
      for (auto& x : row) x = uint8_t(x % 243);
    std::vector<float> all(100), part(100);
    decode_elems(e, row.data(), 0, 80, all.data());
    for (auto [k0, k1] : {std::pair<int64_t, int64_t>{3, 77}, {5, 6}, {13, 64}, {0, 1}, {79, 80}}) {
      decode_elems(e, row.data(), k0, k1, part.data());
      for (int64_t j = k0; j < k1; ++j)  // bitwise: random fp8 bytes include NaN codes
        EXPECT_EQ(std::memcmp(&part[size_t(j - k0)], &all[size_t(j)], 4), 0) << int(e) << " j=" << j;
    }
  }
}

}  // namespace
}  // namespace lowbit

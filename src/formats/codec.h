// Row-level access to the canonical packed layout (format.h): element code get/put, element-value lookup
// tables, and decoding a column range of one row. Shared by dequantize(), the quantizers and the CPU kernels.
#pragma once
#include <cstdint>

#include "formats/format.h"
#include "formats/qtensor.h"

namespace lowbit {

// Element values by code, built once. Sub-byte tables are indexed by the code as stored.
struct ElemLuts {
  float e4m3[256];
  float e5m2[256];
  float e3m2[64];
  float e2m3[64];
  float e2m1[16];
  float mxi8[256];   // int8 k / 64
  float i8[256];     // int8 two's complement
  int8_t t5[256][5]; // ternary-1.6: the 5 trits (q in {-1,0,1}) of a byte; bytes >= 243 decode digit by digit too
};
const ElemLuts& elem_luts();

// The code of element j of a row (canonical packing). T5 returns the trit digit q+1 (0..2).
inline uint32_t get_code(const uint8_t* row, ElemType e, int64_t j) {
  switch (e) {
    case ElemType::U4:
    case ElemType::E2M1: return (row[j >> 1] >> ((j & 1) * 4)) & 0xfu;
    case ElemType::U2:
    case ElemType::T2: return (row[j >> 2] >> ((j & 3) * 2)) & 0x3u;
    case ElemType::U1: return (row[j >> 3] >> (j & 7)) & 0x1u;
    case ElemType::E3M2:
    case ElemType::E2M3: {
      // element j occupies bits [6j, 6j+6) of the row's little-endian bit stream (= the 24-bit word rule)
      const int64_t bit = 6 * j;
      const uint32_t lo = row[bit >> 3];
      const uint32_t hi = ((bit & 7) > 2) ? row[(bit >> 3) + 1] : 0u;
      return ((lo | (hi << 8)) >> (bit & 7)) & 0x3fu;
    }
    case ElemType::T5: {
      uint32_t b = row[j / 5];
      for (int64_t t = j % 5; t > 0; --t) b /= 3;
      return b % 3;
    }
    default: return row[j];  // 8-bit codes
  }
}

// ORs `code` into element j of a zero-initialised row (T5: `code` is the trit digit q+1).
inline void put_code(uint8_t* row, ElemType e, int64_t j, uint32_t code) {
  switch (e) {
    case ElemType::U4:
    case ElemType::E2M1: row[j >> 1] |= uint8_t((code & 0xfu) << ((j & 1) * 4)); break;
    case ElemType::U2:
    case ElemType::T2: row[j >> 2] |= uint8_t((code & 0x3u) << ((j & 3) * 2)); break;
    case ElemType::U1: row[j >> 3] |= uint8_t((code & 0x1u) << (j & 7)); break;
    case ElemType::E3M2:
    case ElemType::E2M3: {
      const int64_t bit = 6 * j;
      const uint32_t v = (code & 0x3fu) << (bit & 7);
      row[bit >> 3] |= uint8_t(v);
      if ((bit & 7) > 2) row[(bit >> 3) + 1] |= uint8_t(v >> 8);
      break;
    }
    case ElemType::T5: {
      static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
      row[j / 5] = uint8_t(row[j / 5] + code * kPow3[j % 5]);
      break;
    }
    default: row[j] = uint8_t(code); break;
  }
}

// Element values (without any scale) of columns [k0, k1) of one row's codes: minifloat values, int8
// values, MXINT8 k/64, unsigned integer codes of group-affine formats, ternary q in {-1,0,1}.
// Plain formats (F32/BF16/F16) decode to their values.
void decode_elems(ElemType e, const uint8_t* row_codes, int64_t k0, int64_t k1, float* out);

// Fully dequantized values of columns [k0, k1) of row `row` (the format's decode, scales applied).
void decode_row_range(const QTensor& t, int64_t row, int64_t k0, int64_t k1, float* out);

// The per-block multiplier of block `b` of row `row` for block-scaled formats: E8M0 -> 2^(byte-127)
// (NaN for 0xFF); NVFP4 -> fl(S_dec_b / S_enc). Decoded value = element value * this.
float block_factor(const QTensor& t, int64_t row, int64_t b);
// block_factor for blocks [b0, b1) of one row into out[0, b1 - b0).
void block_factors(const QTensor& t, int64_t row, int64_t b0, int64_t b1, float* out);

}  // namespace lowbit

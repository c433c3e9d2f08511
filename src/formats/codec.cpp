#include "formats/codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/minifloat.h"
#include "util/error.h"
#include "util/half.h"

namespace lowbit {

namespace {
ElemLuts build_luts() {
  ElemLuts l;
  for (uint32_t c = 0; c < 256; ++c) {
    l.e4m3[c] = FP8E4M3::decode(c);
    l.e5m2[c] = FP8E5M2::decode(c);
    l.mxi8[c] = MXInt8Elem::decode(uint8_t(c));
    l.i8[c] = float(int8_t(uint8_t(c)));
    uint32_t b = c;
    for (int t = 0; t < 5; ++t) {
      l.t5[c][t] = int8_t(int(b % 3) - 1);
      b /= 3;
    }
  }
  for (uint32_t c = 0; c < 64; ++c) {
    l.e3m2[c] = FP6E3M2::decode(c);
    l.e2m3[c] = FP6E2M3::decode(c);
  }
  for (uint32_t c = 0; c < 16; ++c) l.e2m1[c] = FP4E2M1::decode(c);
  return l;
}

// Sub-byte element types whose codes index a table directly.
template <int Bits>
void decode_packed(const uint8_t* row, int64_t k0, int64_t k1, const float* table, float* out) {
  constexpr int per_byte = 8 / Bits;
  constexpr uint32_t mask = (1u << Bits) - 1u;
  int64_t j = k0;
  // head up to a byte boundary, then whole bytes, then the tail
  for (; j < k1 && (j % per_byte) != 0; ++j) *out++ = table[(row[j / per_byte] >> ((j % per_byte) * Bits)) & mask];
  for (; j + per_byte <= k1; j += per_byte) {
    const uint32_t b = row[j / per_byte];
    for (int t = 0; t < per_byte; ++t) *out++ = table[(b >> (t * Bits)) & mask];
  }
  for (; j < k1; ++j) *out++ = table[(row[j / per_byte] >> ((j % per_byte) * Bits)) & mask];
}

constexpr float kUintValues[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
constexpr float kTernaryValues[4] = {-1.0f, 0.0f, 1.0f, 2.0f};  // code q+1; code 3 is never written
}  // namespace

const ElemLuts& elem_luts() {
  static const ElemLuts luts = build_luts();
  return luts;
}

void decode_elems(ElemType e, const uint8_t* row, int64_t k0, int64_t k1, float* out) {
  const ElemLuts& L = elem_luts();
  switch (e) {
    case ElemType::F32: std::memcpy(out, row + 4 * k0, size_t(k1 - k0) * 4); return;
    case ElemType::BF16:
      for (int64_t j = k0; j < k1; ++j) {
        uint16_t h;
        std::memcpy(&h, row + 2 * j, 2);
        *out++ = bf16_to_f32(h);
      }
      return;
    case ElemType::F16:
      for (int64_t j = k0; j < k1; ++j) {
        uint16_t h;
        std::memcpy(&h, row + 2 * j, 2);
        *out++ = f16_to_f32(h);
      }
      return;
    case ElemType::E4M3:
      for (int64_t j = k0; j < k1; ++j) *out++ = L.e4m3[row[j]];
      return;
    case ElemType::E5M2:
      for (int64_t j = k0; j < k1; ++j) *out++ = L.e5m2[row[j]];
      return;
    case ElemType::I8:
      for (int64_t j = k0; j < k1; ++j) *out++ = L.i8[row[j]];
      return;
    case ElemType::MXI8:
      for (int64_t j = k0; j < k1; ++j) *out++ = L.mxi8[row[j]];
      return;
    case ElemType::E2M1: decode_packed<4>(row, k0, k1, L.e2m1, out); return;
    case ElemType::U4: decode_packed<4>(row, k0, k1, kUintValues, out); return;
    case ElemType::U2: decode_packed<2>(row, k0, k1, kUintValues, out); return;
    case ElemType::U1: decode_packed<1>(row, k0, k1, kUintValues, out); return;
    case ElemType::T2: decode_packed<2>(row, k0, k1, kTernaryValues, out); return;
    case ElemType::E3M2:
    case ElemType::E2M3: {
      const float* table = e == ElemType::E3M2 ? L.e3m2 : L.e2m3;
      for (int64_t j = k0; j < k1; ++j) *out++ = table[get_code(row, e, j)];
      return;
    }
    case ElemType::T5: {
      int64_t j = k0;
      for (; j < k1 && j % 5 != 0; ++j) *out++ = float(L.t5[row[j / 5]][j % 5]);
      for (; j + 5 <= k1; j += 5) {
        const int8_t* t = L.t5[row[j / 5]];
        for (int i = 0; i < 5; ++i) *out++ = float(t[i]);
      }
      for (; j < k1; ++j) *out++ = float(L.t5[row[j / 5]][j % 5]);
      return;
    }
  }
  fail("decode_elems: unknown element type ", int(e));
}

float block_factor(const QTensor& t, int64_t row, int64_t b) {
  const uint8_t code = t.scales.data[size_t(row * t.nscales_per_row() + b)];
  if (t.info().scheme == ScaleScheme::BlockE8M0) return E8M0::decode(code);
  // NVFP4: one division per block; the decode is e2m1 * fl(S_dec_b / S_enc) (docs/formats.md)
  return elem_luts().e4m3[code] / t.tensor_scale;
}

void block_factors(const QTensor& t, int64_t row, int64_t b0, int64_t b1, float* out) {
  const uint8_t* codes = t.scales.data + size_t(row * t.nscales_per_row());
  if (t.info().scheme == ScaleScheme::BlockE8M0) {
    for (int64_t b = b0; b < b1; ++b) out[b - b0] = E8M0::decode(codes[b]);
  } else {
    const float* e4m3 = elem_luts().e4m3;
    for (int64_t b = b0; b < b1; ++b) out[b - b0] = e4m3[codes[b]] / t.tensor_scale;
  }
}

void decode_row_range(const QTensor& t, int64_t row, int64_t k0, int64_t k1, float* out) {
  const FormatInfo& fi = t.info();
  const uint8_t* codes = t.row_codes(row);
  decode_elems(fi.elem, codes, k0, k1, out);
  const int64_t n = k1 - k0;
  switch (fi.scheme) {
    case ScaleScheme::None: return;
    case ScaleScheme::RowF32: {
      float s;
      std::memcpy(&s, t.scales.data + 4 * row, 4);
      for (int64_t i = 0; i < n; ++i) out[i] *= s;
      return;
    }
    case ScaleScheme::TensorF32:
      for (int64_t i = 0; i < n; ++i) out[i] *= t.tensor_scale;
      return;
    case ScaleScheme::GroupAffine: {
      const int64_t g = t.group, ng = t.nscales_per_row();
      const uint16_t* sc = t.scales.as<uint16_t>() + row * ng;
      const uint16_t* of = t.offsets.as<uint16_t>() + row * ng;
      for (int64_t j = k0; j < k1;) {
        const int64_t gi = j / g, end = std::min(k1, (gi + 1) * g);
        const float s = bf16_to_f32(sc[gi]), m = bf16_to_f32(of[gi]);
        // x = q * s + m with one rounding (fma), the decode every kernel reproduces
        for (; j < end; ++j) out[j - k0] = std::fma(out[j - k0], s, m);
      }
      return;
    }
    case ScaleScheme::BlockE8M0:
    case ScaleScheme::BlockE4M3F32: {
      const int64_t bs = fi.block;
      for (int64_t j = k0; j < k1;) {
        const int64_t b = j / bs, end = std::min(k1, (b + 1) * bs);
        float f;
        block_factors(t, row, b, b + 1, &f);
        for (; j < end; ++j) out[j - k0] *= f;
      }
      return;
    }
  }
}

}  // namespace lowbit

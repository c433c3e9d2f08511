#include "formats/random_codes.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "formats/minifloat.h"
#include "util/error.h"
#include "util/half.h"
#include "util/rng.h"

namespace lowbit {

namespace {

// Makes one random byte a valid code of element type `e` (sub-byte types: every field of the byte).
uint8_t valid_code_byte(ElemType e, uint8_t b, Rng& rng) {
  switch (e) {
    case ElemType::E4M3:
      return (b & 0x7f) == 0x7f ? uint8_t(b ^ 1) : b;  // S.1111.111 is NaN: step to the max
    case ElemType::E5M2:
      return ((b >> 2) & 0x1f) == 0x1f ? uint8_t(b & ~0x40) : b;  // exponent 31 is Inf/NaN: halve it
    case ElemType::MXI8:
      return b == 0x80 ? uint8_t(0x81) : b;  // -128 is outside MXINT8's [-127, 127]
    case ElemType::T2: {
      uint8_t out = 0;
      for (int j = 0; j < 4; ++j) out |= uint8_t(rng.next_u32() % 3) << (2 * j);  // codes 0..2 = q+1
      return out;
    }
    case ElemType::T5: return uint8_t(b % 243);  // 3^5 = 243 patterns of 5 trits
    default: return b;                           // integers, fp6, fp4: every pattern is a finite value
  }
}

float elem_max(ElemType e) {
  switch (e) {
    case ElemType::E4M3: return FP8E4M3::max_value();
    case ElemType::E5M2: return FP8E5M2::max_value();
    case ElemType::E3M2: return FP6E3M2::max_value();
    case ElemType::E2M3: return FP6E2M3::max_value();
    case ElemType::E2M1: return FP4E2M1::max_value();
    case ElemType::I8: return 127.0f;
    case ElemType::MXI8: return 127.0f / 64.0f;
    default: return 1.0f;
  }
}

}  // namespace

QTensor random_qtensor(Format fmt, int64_t rows, int64_t cols, int group, uint64_t seed, std::string name) {
  const FormatInfo& fi = format_info(fmt);
  QTensor t;
  t.name = std::move(name);
  t.fmt = fmt;
  t.rows = rows;
  t.cols = cols;
  t.group = effective_group(fmt, group);
  LB_CHECK(fi.scheme != ScaleScheme::GroupAffine || (t.group > 0 && t.group % 32 == 0), "random_qtensor: group ",
           t.group, " is not a positive multiple of 32");
  const size_t rb = row_code_bytes(fmt, cols);
  Buffer codes = Buffer::zeros(rb * size_t(rows));
  uint8_t* c = codes.mutable_data();
  const float target = 0.02f;  // the typical magnitude of a trained Llama weight
  // codes, row-parallel with a per-row stream so the result does not depend on the thread count
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    Rng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(r));
    uint8_t* row = c + size_t(r) * rb;
    if (fi.scheme == ScaleScheme::None) {
      for (int64_t j = 0; j < cols; ++j) {
        const float v = (rng.uniform() * 2.0f - 1.0f) * target * 1.7320508f;  // uniform with std `target`
        if (fmt == Format::F32) std::memcpy(row + 4 * j, &v, 4);
        else {
          const uint16_t h = fmt == Format::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
          std::memcpy(row + 2 * j, &h, 2);
        }
      }
    } else {
      size_t j = 0;
      for (; j + 8 <= rb; j += 8) {
        uint64_t w = rng.next_u64();
        for (int b = 0; b < 8; ++b) row[j + b] = valid_code_byte(fi.elem, uint8_t(w >> (8 * b)), rng);
      }
      for (; j < rb; ++j) row[j] = valid_code_byte(fi.elem, uint8_t(rng.next_u32()), rng);
      // ternary-1.6: the last byte of a row may hold fewer than 5 trits; a value < 243 is valid anyway
    }
  }
  t.codes = codes;
  const int64_t ns = scales_per_row(fmt, cols, t.group) * rows;
  const float mx = elem_max(fi.elem);
  switch (fi.scheme) {
    case ScaleScheme::None: break;
    case ScaleScheme::RowF32: {
      Buffer s = Buffer::zeros(size_t(ns) * 4);
      const float v = 4.0f * target / mx;  // the largest code decodes to ~4x the typical magnitude
      for (int64_t i = 0; i < ns; ++i) std::memcpy(s.mutable_data() + 4 * i, &v, 4);
      t.scales = s;
      break;
    }
    case ScaleScheme::TensorF32: t.tensor_scale = target; break;
    case ScaleScheme::GroupAffine: {
      const int levels = (1 << elem_bits(fi.elem)) - 1;
      Buffer s = Buffer::zeros(size_t(ns) * 2), o = Buffer::zeros(size_t(ns) * 2);
      const uint16_t sv = f32_to_bf16(4.0f * target / levels), ov = f32_to_bf16(-2.0f * target);
      for (int64_t i = 0; i < ns; ++i) {
        std::memcpy(s.mutable_data() + 2 * i, &sv, 2);
        std::memcpy(o.mutable_data() + 2 * i, &ov, 2);
      }
      t.scales = s;
      t.offsets = o;
      break;
    }
    case ScaleScheme::BlockE8M0: {
      // X = 2^e with X * max_elem ~ 4 * target
      const int e = int(std::floor(std::log2(4.0f * target / mx)));
      Buffer s = Buffer::zeros(size_t(ns));
      std::memset(s.mutable_data(), 127 + e, size_t(ns));
      t.scales = s;
      break;
    }
    case ScaleScheme::BlockE4M3F32: {
      // decoded = e2m1 * S_dec / S_enc with S_dec = 1.0 (E4M3 0x38) and S_enc = 6 / (4 * target)
      Buffer s = Buffer::zeros(size_t(ns));
      std::memset(s.mutable_data(), 0x38, size_t(ns));
      t.scales = s;
      t.tensor_scale = 6.0f / (4.0f * target);
      break;
    }
  }
  t.validate();
  return t;
}

}  // namespace lowbit

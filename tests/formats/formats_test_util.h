// Helpers for the format tests: random inputs, and an independent brute-force model of each format's grid
// (element values from the minifloat codecs, scales read back from the packed tensor).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "formats/codec.h"
#include "formats/minifloat.h"
#include "formats/qtensor.h"
#include "util/half.h"
#include "util/rng.h"

namespace lowbit::test {

inline std::vector<float> gaussian(size_t n, uint64_t seed, float sigma = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal() * sigma;
  return v;
}

// Element value of `code` (for T2/T5 the digit q+1), computed from the codecs, not the lookup tables.
inline float elem_value(ElemType e, uint32_t code) {
  switch (e) {
    case ElemType::E4M3: return FP8E4M3::decode(code);
    case ElemType::E5M2: return FP8E5M2::decode(code);
    case ElemType::E3M2: return FP6E3M2::decode(code);
    case ElemType::E2M3: return FP6E2M3::decode(code);
    case ElemType::E2M1: return FP4E2M1::decode(code);
    case ElemType::I8: return float(int8_t(uint8_t(code)));
    case ElemType::MXI8: return float(int8_t(uint8_t(code))) / 64.0f;
    case ElemType::U4:
    case ElemType::U2:
    case ElemType::U1: return float(code);
    case ElemType::T2:
    case ElemType::T5: return float(int(code) - 1);
    default: return NAN;
  }
}

// Every code the quantizer may legitimately produce for the element type (no NaN/Inf codes, no -128
// for MXINT8, no ternary code 3).
inline std::vector<uint32_t> valid_codes(ElemType e) {
  std::vector<uint32_t> out;
  uint32_t n = 0;
  switch (e) {
    case ElemType::E4M3:
    case ElemType::E5M2:
    case ElemType::I8:
    case ElemType::MXI8: n = 256; break;
    case ElemType::E3M2:
    case ElemType::E2M3: n = 64; break;
    case ElemType::E2M1:
    case ElemType::U4: n = 16; break;
    case ElemType::U2: n = 4; break;
    case ElemType::U1: n = 2; break;
    case ElemType::T2:
    case ElemType::T5: n = 3; break;
    default: break;
  }
  for (uint32_t c = 0; c < n; ++c) {
    if (e == ElemType::MXI8 && c == 0x80) continue;
    if ((e == ElemType::E4M3 || e == ElemType::E5M2) && !std::isfinite(elem_value(e, c))) continue;
    out.push_back(c);
  }
  return out;
}

// A code is "even" when RNE prefers it at an exact tie: the last mantissa bit / the integer is even.
inline bool code_is_even(ElemType e, uint32_t code) {
  if (e == ElemType::T2 || e == ElemType::T5) return ((int(code) - 1) & 1) == 0;
  return (code & 1u) == 0;
}

// The decoded value the format assigns to `code` at element (r, j) of t, with t's stored parameters.
inline float grid_value(const QTensor& t, int64_t r, int64_t j, uint32_t code) {
  const FormatInfo& fi = t.info();
  const float e = elem_value(fi.elem, code);
  switch (fi.scheme) {
    case ScaleScheme::RowF32: {
      float s;
      std::memcpy(&s, t.scales.data + 4 * r, 4);
      return e * s;
    }
    case ScaleScheme::TensorF32: return e * t.tensor_scale;
    case ScaleScheme::GroupAffine: {
      const int64_t gi = r * t.nscales_per_row() + j / t.group;
      const float s = bf16_to_f32(t.scales.as<uint16_t>()[gi]);
      const float m = bf16_to_f32(t.offsets.as<uint16_t>()[gi]);
      return std::fma(e, s, m);
    }
    case ScaleScheme::BlockE8M0: {
      const uint8_t b = t.scales.data[r * t.nscales_per_row() + j / fi.block];
      if (b == 0xff) return NAN;
      return e * std::ldexp(1.0f, int(b) - 127);
    }
    case ScaleScheme::BlockE4M3F32: {
      const uint8_t b = t.scales.data[r * t.nscales_per_row() + j / fi.block];
      return e * (FP8E4M3::decode(b) / t.tensor_scale);
    }
    default: return NAN;
  }
}

// |offset| of the group holding (r, j) (0 for formats without offsets): part of the rounding slack.
inline float group_offset_abs(const QTensor& t, int64_t r, int64_t j) {
  if (t.info().scheme != ScaleScheme::GroupAffine) return 0.0f;
  return std::fabs(bf16_to_f32(t.offsets.as<uint16_t>()[r * t.nscales_per_row() + j / t.group]));
}

// Checks, for every finite x, that the dequantized value is the grid value of the stored code and is the
// nearest grid point given the stored parameters. `slack_rel` admits the fp32 rounding of the quantizer's
// own arithmetic (x / s in fp32) at near-ties; with slack_rel == 0 exact ties must pick the even code.
inline void expect_nearest_on_grid(const float* x, const QTensor& t, double slack_rel, const char* what) {
  const std::vector<float> deq = dequantize(t);
  const std::vector<uint32_t> codes = valid_codes(t.info().elem);
  int64_t failures = 0;
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t j = 0; j < t.cols && failures < 5; ++j) {
      const float xv = x[r * t.cols + j];
      const uint32_t c = get_code(t.row_codes(r), t.info().elem, j);
      const float v = grid_value(t, r, j, c);
      const float d = deq[size_t(r * t.cols + j)];
      if (std::isnan(v)) {  // a NaN unit decodes to NaN
        if (!std::isnan(d)) ++failures, ADD_FAILURE() << what << " [" << r << "," << j << "] NaN unit decoded " << d;
        continue;
      }
      if (!(std::memcmp(&v, &d, 4) == 0)) {
        ++failures;
        ADD_FAILURE() << what << " [" << r << "," << j << "] dequantized " << d << " != grid value " << v;
        continue;
      }
      const double dist = std::fabs(double(v) - double(xv));
      double best = INFINITY;
      for (uint32_t cc : codes) best = std::min(best, std::fabs(double(grid_value(t, r, j, cc)) - double(xv)));
      const double slack = slack_rel * (std::fabs(xv) + std::fabs(v) + group_offset_abs(t, r, j));
      if (dist > best + slack) {
        ++failures;
        ADD_FAILURE() << what << " [" << r << "," << j << "] x=" << xv << " -> " << v << " (code " << c
                      << "), but a grid point is " << best << " away vs " << dist;
      }
      if (slack_rel == 0.0 && dist == best && !code_is_even(t.info().elem, c)) {
        for (uint32_t cc : codes) {
          if (cc != c && std::fabs(double(grid_value(t, r, j, cc)) - double(xv)) == dist &&
              grid_value(t, r, j, cc) != v && code_is_even(t.info().elem, cc)) {
            ++failures;
            ADD_FAILURE() << what << " [" << r << "," << j << "] x=" << xv << " tie broken to odd code " << c;
            break;
          }
        }
      }
    }
  }
}

}  // namespace lowbit::test

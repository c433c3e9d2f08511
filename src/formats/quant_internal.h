// Internal interface between quantize() (quantize.cpp) and the per-family quantizers. Each quantizer
// receives a QTensor whose shape, group and zero-filled buffers are already set up, and fills codes,
// scales, offsets and tensor_scale. Definitions of every rule: docs/formats.md.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "formats/minifloat.h"
#include "formats/qtensor.h"
#include "util/error.h"

namespace lowbit::detail {

void quantize_plain(const float* x, QTensor& t);                               // f32, bf16, fp16
void quantize_row_scaled(const float* x, QTensor& t, const QuantOptions& o);   // fp8, int8, fp6 (row/tensor), *-static
void quantize_group_affine(const float* x, QTensor& t, const QuantOptions& o);  // int4/2/1 RTN and HQQ
void quantize_ternary(const float* x, QTensor& t);                             // ternary, ternary-1.6
void quantize_mx(const float* x, QTensor& t, const QuantOptions& o);           // MXFP8/6/4, MXINT8
void quantize_nvfp4(const float* x, QTensor& t, const QuantOptions& o);        // NVFP4

// E2M1 round to nearest even with saturation, by comparisons (the NVFP4 scale search evaluates many
// candidate scales); equals FP4E2M1::round for every finite x (tests/formats).
float e2m1_round_fast(float x);

inline void store_f32(uint8_t* p, float v) { std::memcpy(p, &v, 4); }
inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

// Calls f(Codec{}) with the element codec type of `e` (MiniFloat types and MXInt8Elem share
// encode/decode); `what` names the caller for the error on other element types.
template <typename F>
void with_elem_codec(ElemType e, const char* what, F&& f) {
  switch (e) {
    case ElemType::E4M3: f(FP8E4M3{}); return;
    case ElemType::E5M2: f(FP8E5M2{}); return;
    case ElemType::E3M2: f(FP6E3M2{}); return;
    case ElemType::E2M3: f(FP6E2M3{}); return;
    case ElemType::E2M1: f(FP4E2M1{}); return;
    case ElemType::MXI8: f(MXInt8Elem{}); return;
    default: fail(what, ": element type ", int(e), " has no minifloat codec");
  }
}

// Largest finite element magnitude (RCEIL and per-row/tensor scales divide amax by it).
template <typename Codec>
float codec_max_value() {
  if constexpr (std::is_same_v<Codec, MXInt8Elem>) return 127.0f / 64.0f;
  else return Codec::max_value();
}
// Exponent of the largest normal (MX FLOOR rule); MXINT8's k/64 with |k| < 128 has emax 0.
template <typename Codec>
int codec_emax() {
  if constexpr (std::is_same_v<Codec, MXInt8Elem>) return 0;
  else return emax_elem<Codec>();
}
template <typename Codec>
uint32_t codec_encode(float v) {
  if constexpr (std::is_same_v<Codec, MXInt8Elem>) return MXInt8Elem::encode(v);
  else return Codec::encode(v);
}
template <typename Codec>
float codec_decode(uint32_t c) {
  if constexpr (std::is_same_v<Codec, MXInt8Elem>) return MXInt8Elem::decode(uint8_t(c));
  else return Codec::decode(c);
}

// amax of a block of n values; false when one of them is not finite (the block then decodes to NaN).
inline bool block_amax(const float* v, int64_t n, float& amax) {
  amax = 0.0f;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    finite = finite && std::isfinite(v[i]);
    amax = std::max(amax, std::fabs(v[i]));
  }
  return finite;
}

}  // namespace lowbit::detail

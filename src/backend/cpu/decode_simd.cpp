#include "backend/cpu/decode_simd.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "backend/cpu/simd.h"
#include "formats/codec.h"
#include "util/error.h"
#include "util/half.h"

namespace lowbit::cpu {

namespace {

#if LOWBIT_AVX2

// A sign-magnitude minifloat (E exponent bits, M mantissa bits, bias B) from 8 integer codes in 16-bit
// lanes: shifted so that its exponent and mantissa fields land on fp16's, the code is an fp16 of value
// v * 2^(B - 15) (subnormals included; F16C widens them to normal fp32 without microcode assists, unlike
// fp32 subnormal arithmetic), and one exact multiply by 2^(15 - B) finishes it.
template <int E, int M, int B>
inline __m256 minifloat8(__m128i c16) {
  constexpr int kBits = 1 + E + M;
  const __m128i mag = _mm_and_si128(c16, _mm_set1_epi16(int16_t((1 << (E + M)) - 1)));
  const __m128i sign = _mm_slli_epi16(_mm_srli_epi16(c16, kBits - 1), 15);
  const __m128i h = _mm_or_si128(_mm_slli_epi16(mag, 10 - M), sign);
  const __m256 v = _mm256_cvtph_ps(h);
  if constexpr (B == 15) return v;  // E5M2 is the top byte of an fp16
  else return _mm256_mul_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32((127 + 15 - B) << 23)));
}

// 8 lanes of 32-bit codes (< 2^16) -> 8 lanes of 16 bits, in order.
inline __m128i narrow16(__m256i v) {
  return _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

// 8 sub-byte fields of `bits` bits from a little-endian word, element t at bits t * bits.
inline __m256i fields8(uint32_t word, const __m256i shifts, uint32_t mask) {
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(word)), shifts), _mm256_set1_epi32(int(mask)));
}

template <ElemType E>
inline __m256 elems8(const uint8_t* row, int64_t j) {  // j % 8 == 0
  if constexpr (E == ElemType::I8 || E == ElemType::MXI8) {
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + j))));
    return E == ElemType::I8 ? v : _mm256_mul_ps(v, _mm256_set1_ps(1.0f / 64.0f));
  } else if constexpr (E == ElemType::E4M3) {
    const __m128i c = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + j)));
    const __m256 v = minifloat8<4, 3, 7>(c);
    // S.1111.111 is NaN (the fp16 image would read 480)
    const __m128i is_nan = _mm_cmpeq_epi16(_mm_and_si128(c, _mm_set1_epi16(0x7f)), _mm_set1_epi16(0x7f));
    return _mm256_blendv_ps(v, _mm256_set1_ps(NAN), _mm256_castsi256_ps(_mm256_cvtepi16_epi32(is_nan)));
  } else if constexpr (E == ElemType::E5M2) {
    // the fp16 image carries E5M2's Inf and NaN codes as they are
    return minifloat8<5, 2, 15>(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + j))));
  } else if constexpr (E == ElemType::E2M1 || E == ElemType::U4) {
    uint32_t w;
    std::memcpy(&w, row + j / 2, 4);
    const __m256i c = fields8(w, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), 0xf);
    if constexpr (E == ElemType::U4) return _mm256_cvtepi32_ps(c);
    else return minifloat8<2, 1, 1>(narrow16(c));
  } else if constexpr (E == ElemType::U2 || E == ElemType::T2) {
    uint16_t w;
    std::memcpy(&w, row + j / 4, 2);
    const __m256 v = _mm256_cvtepi32_ps(fields8(w, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), 0x3));
    return E == ElemType::U2 ? v : _mm256_sub_ps(v, _mm256_set1_ps(1.0f));  // ternary code q + 1
  } else if constexpr (E == ElemType::U1) {
    return _mm256_cvtepi32_ps(fields8(row[j / 8], _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), 0x1));
  } else if constexpr (E == ElemType::E3M2 || E == ElemType::E2M3) {
    // 8 elements = two 24-bit words of 4 elements (6 bytes)
    // two register loads (4 + 2 bytes): a 6-byte memcpy into a word would stall on store forwarding
    uint32_t w4;
    uint16_t w2;
    std::memcpy(&w4, row + (j / 8) * 6, 4);
    std::memcpy(&w2, row + (j / 8) * 6 + 4, 2);
    const int lo = int(w4 & 0xffffff), hi = int((w4 >> 24) | (uint32_t(w2) << 8));
    const __m256i c = _mm256_and_si256(
        _mm256_srlv_epi32(_mm256_setr_epi32(lo, lo, lo, lo, hi, hi, hi, hi), _mm256_setr_epi32(0, 6, 12, 18, 0, 6, 12, 18)),
        _mm256_set1_epi32(0x3f));
    if constexpr (E == ElemType::E3M2) return minifloat8<3, 2, 3>(narrow16(c));
    else return minifloat8<2, 3, 1>(narrow16(c));
  } else {
    static_assert(E == ElemType::I8, "no SIMD decoder for this element type");
    return _mm256_setzero_ps();
  }
}

template <ElemType E>
void elems_range(const uint8_t* row, int64_t j0, int64_t j1, float* out) {
  int64_t j = j0;
  for (; j + 8 <= j1; j += 8) _mm256_storeu_ps(out + (j - j0), elems8<E>(row, j));
  if (j < j1) decode_elems(E, row, j, j1, out + (j - j0));  // the row's tail
}

bool simd_elems(ElemType e, const uint8_t* row, int64_t j0, int64_t j1, float* out) {
  switch (e) {
    case ElemType::I8: elems_range<ElemType::I8>(row, j0, j1, out); return true;
    case ElemType::MXI8: elems_range<ElemType::MXI8>(row, j0, j1, out); return true;
    case ElemType::E4M3: elems_range<ElemType::E4M3>(row, j0, j1, out); return true;
    case ElemType::E5M2: elems_range<ElemType::E5M2>(row, j0, j1, out); return true;
    case ElemType::E2M1: elems_range<ElemType::E2M1>(row, j0, j1, out); return true;
    case ElemType::U4: elems_range<ElemType::U4>(row, j0, j1, out); return true;
    case ElemType::U2: elems_range<ElemType::U2>(row, j0, j1, out); return true;
    case ElemType::T2: elems_range<ElemType::T2>(row, j0, j1, out); return true;
    case ElemType::U1: elems_range<ElemType::U1>(row, j0, j1, out); return true;
    case ElemType::E3M2: elems_range<ElemType::E3M2>(row, j0, j1, out); return true;
    case ElemType::E2M3: elems_range<ElemType::E2M3>(row, j0, j1, out); return true;
    default: return false;
  }
}

inline void scale_span(float* p, int64_t n, float s) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_loadu_ps(p + i), sv));
  for (; i < n; ++i) p[i] *= s;
}
inline void affine_span(float* p, int64_t n, float s, float m) {
  const __m256 sv = _mm256_set1_ps(s), mv = _mm256_set1_ps(m);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, _mm256_fmadd_ps(_mm256_loadu_ps(p + i), sv, mv));
  for (; i < n; ++i) p[i] = std::fma(p[i], s, m);
}

#else

bool simd_elems(ElemType, const uint8_t*, int64_t, int64_t, float*) { return false; }
inline void scale_span(float* p, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) p[i] *= s;
}
inline void affine_span(float* p, int64_t n, float s, float m) {
  for (int64_t i = 0; i < n; ++i) p[i] = std::fma(p[i], s, m);
}

#endif

}  // namespace

void decode_chunk(const QTensor& W, int64_t n, int64_t k0, int64_t k1, bool scaled, float* out) {
  const FormatInfo& fi = W.info();
  LB_CHECK(k1 - k0 <= kMaxChunk && k0 % 32 == 0, "decode_chunk: columns [", k0, ", ", k1, ") not a chunk");
  const uint8_t* row = W.row_codes(n);
  if (!simd_elems(fi.elem, row, k0, k1, out)) {
    if (scaled) return decode_row_range(W, n, k0, k1, out);
    return decode_elems(fi.elem, row, k0, k1, out);
  }
  if (!scaled) return;
  const int64_t len = k1 - k0;
  switch (fi.scheme) {
    case ScaleScheme::None: return;
    case ScaleScheme::RowF32: {
      float s;
      std::memcpy(&s, W.scales.data + 4 * n, 4);
      return scale_span(out, len, s);
    }
    case ScaleScheme::TensorF32: return scale_span(out, len, W.tensor_scale);
    case ScaleScheme::GroupAffine: {
      const int64_t g = W.group, ng = W.nscales_per_row();
      const uint16_t* sc = W.scales.as<uint16_t>() + n * ng;
      const uint16_t* of = W.offsets.as<uint16_t>() + n * ng;
      for (int64_t j = k0; j < k1;) {
        const int64_t gi = j / g, end = std::min(k1, (gi + 1) * g);
        affine_span(out + (j - k0), end - j, bf16_to_f32(sc[gi]), bf16_to_f32(of[gi]));
        j = end;
      }
      return;
    }
    case ScaleScheme::BlockE8M0:
    case ScaleScheme::BlockE4M3F32: {
      const int64_t bs = fi.block;
      float f[kMaxChunkBlocks];
      block_factors(W, n, k0 / bs, (k1 + bs - 1) / bs, f);
      for (int64_t j = k0, i = 0; j < k1; j += bs, ++i) scale_span(out + (j - k0), std::min(bs, k1 - j), f[i]);
      return;
    }
  }
}

namespace {
// byte -> its 4 two-bit codes / 8 one-bit codes, one per byte, element order
struct UnpackLuts {
  std::array<uint32_t, 256> u2;
  std::array<uint64_t, 256> u1;
  UnpackLuts() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t v2 = 0;
      for (int t = 0; t < 4; ++t) v2 |= ((b >> (2 * t)) & 3u) << (8 * t);
      u2[b] = v2;
      uint64_t v1 = 0;
      for (int t = 0; t < 8; ++t) v1 |= uint64_t((b >> t) & 1u) << (8 * t);
      u1[b] = v1;
    }
  }
};
const UnpackLuts& unpack_luts() {
  static const UnpackLuts l;
  return l;
}
}  // namespace

void unpack_uint_codes(ElemType e, const uint8_t* row, int64_t K, uint8_t* out) {
  int64_t j = 0;
  if (e == ElemType::U4) {
#if LOWBIT_AVX2
    const __m128i low4 = _mm_set1_epi8(0x0f);
    for (; j + 32 <= K; j += 32) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j / 2));
      const __m128i lo = _mm_and_si128(b, low4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), low4);
      // element 2i is the low nibble of byte i: interleave low and high nibbles
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm_unpacklo_epi8(lo, hi));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j + 16), _mm_unpackhi_epi8(lo, hi));
    }
#endif
  } else if (e == ElemType::U2) {
    const auto& l = unpack_luts();
    for (; j + 4 <= K; j += 4) std::memcpy(out + j, &l.u2[row[j / 4]], 4);
  } else if (e == ElemType::U1) {
    const auto& l = unpack_luts();
    for (; j + 8 <= K; j += 8) std::memcpy(out + j, &l.u1[row[j / 8]], 8);
  }
  for (; j < K; ++j) out[j] = uint8_t(get_code(row, e, j));
}

}  // namespace lowbit::cpu

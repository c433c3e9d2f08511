// Small dot-product building blocks for the CPU kernels: AVX2/FMA where the compiler targets it
// (x86-64-v3 builds), portable scalar code otherwise.
#pragma once
#include <algorithm>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LOWBIT_AVX2 1
#endif

namespace lowbit::cpu {

#if LOWBIT_AVX2
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline int32_t hsum256_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
#endif

// sum_i a[i] * b[i] in fp32.
inline float dot_f32(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  float tail = 0.0f;
#if LOWBIT_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  tail = hsum256(_mm256_add_ps(acc0, acc1));
#endif
  for (; i < n; ++i) tail += a[i] * b[i];
  return tail;
}

// out[r] = sum_i x[i] * w[r][i] for R weight rows sharing the x loads.
template <int R>
inline void dot_rows_f32(const float* x, const float* const* w, int64_t n, float* out) {
  int64_t i = 0;
  float acc_s[R] = {};
#if LOWBIT_AVX2
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[r] + i), acc[r]);
  }
  for (int r = 0; r < R; ++r) acc_s[r] = hsum256(acc[r]);
#endif
  for (; i < n; ++i)
    for (int r = 0; r < R; ++r) acc_s[r] += x[i] * w[r][i];
  for (int r = 0; r < R; ++r) out[r] = acc_s[r];
}

// sum over the blocks of [0, n) of dot(x_b, w_b) * fx[b] * fw[b] (blocks of bs, the last may be partial).
inline float block_scaled_dot(const float* x, const float* w, int64_t n, int64_t bs, const float* fx,
                              const float* fw) {
  float tail = 0.0f;
  int64_t b = 0, s = 0;
#if LOWBIT_AVX2
  if (bs % 8 == 0) {
    __m256 acc = _mm256_setzero_ps();
    for (; s + bs <= n; s += bs, ++b) {
      __m256 d = _mm256_mul_ps(_mm256_loadu_ps(x + s), _mm256_loadu_ps(w + s));
      for (int64_t i = 8; i < bs; i += 8) d = _mm256_fmadd_ps(_mm256_loadu_ps(x + s + i), _mm256_loadu_ps(w + s + i), d);
      acc = _mm256_fmadd_ps(d, _mm256_set1_ps(fx[b] * fw[b]), acc);
    }
    tail = hsum256(acc);
  }
#endif
  for (; s < n; s += bs, ++b) tail += dot_f32(x + s, w + s, std::min(bs, n - s)) * (fx[b] * fw[b]);
  return tail;
}

// sum_i a[i] * b[i] over int8 values, exact in int32 for n <= 2^16 (callers chunk longer rows).
inline int32_t dot_i8(const int8_t* a, const int8_t* b, int64_t n) {
  int64_t i = 0;
  int32_t s = 0;
#if LOWBIT_AVX2
  __m256i acc = _mm256_setzero_si256();
  for (; i + 16 <= n; i += 16) {
    const __m256i av = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256i bv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(av, bv));  // pairs of int16 products: |.| <= 2 * 2^14
  }
  s = hsum256_epi32(acc);
#endif
  for (; i < n; ++i) s += int32_t(a[i]) * int32_t(b[i]);
  return s;
}

// sum_i u[i] * s[i] with u[i] in [0, 15] (unsigned codes) and s int8; exact in int32 for n <= 2^16.
inline int32_t dot_u4_i8(const uint8_t* u, const int8_t* s, int64_t n) {
  int64_t i = 0;
  int32_t r = 0;
#if LOWBIT_AVX2
  __m256i acc = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (; i + 32 <= n; i += 32) {
    const __m256i uv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + i));
    const __m256i sv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
    // maddubs saturates at int16, but 2 * 15 * 128 = 3840 cannot reach it
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(uv, sv), ones));
  }
  r = hsum256_epi32(acc);
#endif
  for (; i < n; ++i) r += int32_t(u[i]) * int32_t(s[i]);
  return r;
}

}  // namespace lowbit::cpu

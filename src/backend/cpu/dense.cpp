// Dense CPU linear for plain weights (f32, bf16, fp16) with fp32 activations: y[M,N] = x[M,K] · W[N,K]^T.
// Rows of W are widened to fp32 once per tile of 4 rows and reused for every token (prefill/eval), so the
// conversion cost does not scale with M. OpenMP over row tiles; AVX2/FMA inner loops where available.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LOWBIT_DENSE_AVX2 1
#endif

#include "backend/cpu/qlinear.h"
#include "util/error.h"
#include "util/half.h"

namespace lowbit {

namespace {

constexpr int kRowTile = 4;

// Widens `n` values of a plain-format row to fp32.
void widen_row(Format fmt, const uint8_t* src, int64_t n, float* dst) {
  switch (fmt) {
    case Format::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case Format::BF16: {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
      int64_t i = 0;
#ifdef LOWBIT_DENSE_AVX2
      for (; i + 8 <= n; i += 8) {  // bf16 -> fp32 is a 16-bit left shift into the high half
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
      }
#endif
      for (; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case Format::F16: {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
      int64_t i = 0;
#if defined(LOWBIT_DENSE_AVX2) && defined(__F16C__)
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#endif
      for (; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default: fail("dense_linear: ", format_name(fmt), " is not a plain format");
  }
}

#ifdef LOWBIT_DENSE_AVX2
inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
#endif

// out[r] = dot(w + r*K, x) for r < nr (nr <= 4), fp32 rows.
void dot_rows(const float* w, int nr, int64_t K, const float* x, float* out) {
  int64_t k = 0;
  float acc[kRowTile] = {0, 0, 0, 0};
#ifdef LOWBIT_DENSE_AVX2
  if (nr == kRowTile) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; k + 8 <= K; k += 8) {
      __m256 xv = _mm256_loadu_ps(x + k);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + K + k), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 2 * K + k), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 3 * K + k), xv, a3);
    }
    acc[0] = hsum(a0); acc[1] = hsum(a1); acc[2] = hsum(a2); acc[3] = hsum(a3);
  } else {
    for (int r = 0; r < nr; ++r) {
      __m256 a = _mm256_setzero_ps();
      int64_t kk = 0;
      for (; kk + 8 <= K; kk += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * K + kk), _mm256_loadu_ps(x + kk), a);
      acc[r] = hsum(a);
    }
    k = K & ~int64_t(7);
  }
#endif
  for (int r = 0; r < nr; ++r) {
    float s = acc[r];
    for (int64_t kk = k; kk < K; ++kk) s += w[r * K + kk] * x[kk];
    out[r] = s;
  }
}

}  // namespace

void dense_linear(const float* x, int64_t M, const QTensor& W, float* y) {
  const int64_t N = W.rows, K = W.cols;
  const FormatInfo& fi = W.info();
  LB_CHECK(fi.scheme == ScaleScheme::None, "dense_linear: tensor '", W.name, "' is ", fi.name, ", not a plain format");
  const size_t row_bytes = W.row_bytes();
  const int64_t ntiles = (N + kRowTile - 1) / kRowTile;
#pragma omp parallel
  {
    std::vector<float> wbuf(size_t(kRowTile * K));
    float out[kRowTile];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < ntiles; ++t) {
      const int64_t r0 = t * kRowTile;
      const int nr = int(std::min<int64_t>(kRowTile, N - r0));
      const float* w;
      if (W.fmt == Format::F32) {
        w = reinterpret_cast<const float*>(W.codes.data + size_t(r0) * row_bytes);  // already fp32: no copy
      } else {
        for (int r = 0; r < nr; ++r) widen_row(W.fmt, W.codes.data + size_t(r0 + r) * row_bytes, K, wbuf.data() + r * K);
        w = wbuf.data();
      }
      for (int64_t m = 0; m < M; ++m) {
        dot_rows(w, nr, K, x + m * K, out);
        for (int r = 0; r < nr; ++r) y[m * N + r0 + r] = out[r];
      }
    }
  }
}

}  // namespace lowbit

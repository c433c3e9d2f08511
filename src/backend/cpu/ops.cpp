#include "backend/cpu/ops.h"

#include <cmath>

namespace lowbit {

void rmsnorm(float* out, const float* x, const float* w, int64_t n, int dim, float eps) {
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    double ss = 0.0;  // double: the mean of squares of thousands of values, cheap and exact enough
    for (int i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(float(ss / dim) + eps);
    for (int i = 0; i < dim; ++i) o[i] = xr[i] * inv * w[i];
  }
}

void rope(float* x, int nheads, int head_dim, const float* cos_sin, bool interleaved) {
  const int half = head_dim / 2;
  for (int h = 0; h < nheads; ++h) {
    float* v = x + h * head_dim;
    for (int i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      float* a = interleaved ? v + 2 * i : v + i;
      float* b = interleaved ? v + 2 * i + 1 : v + i + half;
      const float x0 = *a, x1 = *b;
      *a = x0 * c - x1 * s;
      *b = x0 * s + x1 * c;
    }
  }
}

void swiglu(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = x[i];
    x[i] = g / (1.0f + std::exp(-g)) * y[i];
  }
}

void softmax(float* x, int n) {
  float mx = x[0];
  for (int i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace lowbit

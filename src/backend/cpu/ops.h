// CPU reference ops of the Llama forward pass (fp32). Readable first; threads where it matters.
#pragma once
#include <cstdint>

namespace lowbit {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], for each of `n` rows of length `dim`.
void rmsnorm(float* out, const float* x, const float* w, int64_t n, int dim, float eps);

// Rotary embedding in place on `nheads` heads of `head_dim` at position `pos`.
// cos_sin holds [head_dim/2] (cos, sin) pairs for this position.
// interleaved: rotate (x[2i], x[2i+1]); otherwise rotate (x[i], x[i + head_dim/2]) (HF layout).
void rope(float* x, int nheads, int head_dim, const float* cos_sin, bool interleaved);

// x = silu(x) * y elementwise (SwiGLU), n values.
void swiglu(float* x, const float* y, int64_t n);

// In-place softmax of n values.
void softmax(float* x, int n);

}  // namespace lowbit

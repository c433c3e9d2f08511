// Quantized-activation kernels: the activations arrive quantized per token (one QTensor row each).
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/decode_simd.h"
#include "backend/cpu/qlinear_kernels.h"
#include "backend/cpu/qlinear_tiled.h"
#include "backend/cpu/simd.h"
#include "formats/codec.h"
#include "util/error.h"
#include "util/half.h"

namespace lowbit::cpu {

namespace {

float row_scale(const QTensor& t, int64_t row) {
  if (t.info().scheme == ScaleScheme::TensorF32) return t.tensor_scale;
  float s;
  std::memcpy(&s, t.scales.data + 4 * row, 4);
  return s;
}

// Element values (no scale) of every token, [M, K].
std::vector<float> act_elems(const std::vector<QTensor>& acts, int64_t K) {
  std::vector<float> xe(acts.size() * size_t(K));
  for (size_t m = 0; m < acts.size(); ++m)
    for (int64_t k0 = 0; k0 < K; k0 += kChunk)
      decode_chunk(acts[m], 0, k0, std::min(K, k0 + kChunk), false, xe.data() + m * size_t(K) + k0);
  return xe;
}

// int32 dots are exact per span of this many int8 products; longer rows are summed in int64.
constexpr int64_t kIntSpan = 1 << 15;

}  // namespace

void linear_int8_int8(const std::vector<QTensor>& acts, const QTensor& W, float* y) {
  const int64_t M = int64_t(acts.size()), N = W.rows, K = W.cols;
  std::vector<float> sx(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) sx[size_t(m)] = row_scale(acts[size_t(m)], 0);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int8_t* w = reinterpret_cast<const int8_t*>(W.row_codes(n));
    const float sw = row_scale(W, n);
    for (int64_t m = 0; m < M; ++m) {
      const int8_t* xq = reinterpret_cast<const int8_t*>(acts[size_t(m)].codes.data);
      int64_t acc = 0;
      for (int64_t k0 = 0; k0 < K; k0 += kIntSpan) acc += dot_i8(xq + k0, w + k0, std::min(kIntSpan, K - k0));
      y[m * N + n] = float(acc) * sx[size_t(m)] * sw;  // torchao's order: (int_mm * x_scale) * w_scale
    }
  }
}

void linear_row_scaled(const std::vector<QTensor>& acts, const QTensor& W, float* y) {
  const int64_t M = int64_t(acts.size()), K = W.cols;
  const std::vector<float> xe = act_elems(acts, K);
  std::vector<float> sx(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) sx[size_t(m)] = row_scale(acts[size_t(m)], 0);
  tiled_linear_f32(
      xe.data(), M, W.rows, K,
      [&](int64_t n, int64_t k0, int64_t k1, float* out) { decode_chunk(W, n, k0, k1, false, out); },
      [&](int64_t m, int64_t n, float acc) { return acc * sx[size_t(m)] * row_scale(W, n); }, y);
}

void linear_block_scaled(const std::vector<QTensor>& acts, const QTensor& W, float* y) {
  const int64_t M = int64_t(acts.size()), N = W.rows, K = W.cols;
  const int64_t bs = W.info().block, nb = W.nscales_per_row();
  LB_CHECK(M == 0 || acts[0].info().block == bs, "block-scaled linear: activation block ", acts[0].info().block,
           " differs from the weight block ", bs);
  const std::vector<float> xe = act_elems(acts, K);
  std::vector<float> bx(static_cast<size_t>(M * nb));
  for (int64_t m = 0; m < M; ++m) block_factors(acts[size_t(m)], 0, 0, nb, bx.data() + m * nb);
#pragma omp parallel
  {
    std::vector<float> wbuf(static_cast<size_t>(kChunk)), bw(static_cast<size_t>(kChunk / 16));
    std::vector<float> acc(static_cast<size_t>(M));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
        const int64_t k1 = std::min(K, k0 + kChunk);
        decode_chunk(W, n, k0, k1, false, wbuf.data());
        const int64_t b0 = k0 / bs, b1 = (k1 + bs - 1) / bs;
        block_factors(W, n, b0, b1, bw.data());
        for (int64_t m = 0; m < M; ++m) {
          const float* xm = xe.data() + m * K;
          const float* fx = bx.data() + m * nb;
          // per block: (element dot) * x_scale * w_scale; MX scales are powers of two
          acc[size_t(m)] += block_scaled_dot(xm + k0, wbuf.data(), k1 - k0, bs, fx + b0, bw.data());
        }
      }
      for (int64_t m = 0; m < M; ++m) y[m * N + n] = acc[size_t(m)];
    }
  }
}

void linear_int8_group(const std::vector<QTensor>& acts, const QTensor& W, float* y) {
  const int64_t M = int64_t(acts.size()), N = W.rows, K = W.cols;
  const int64_t g = W.group, ng = W.nscales_per_row();
  const ElemType we = W.info().elem;
  std::vector<float> sx(static_cast<size_t>(M));
  std::vector<int32_t> xsum(static_cast<size_t>(M * ng));  // sum of the int8 codes of each token's group
  for (int64_t m = 0; m < M; ++m) {
    sx[size_t(m)] = row_scale(acts[size_t(m)], 0);
    const int8_t* xq = reinterpret_cast<const int8_t*>(acts[size_t(m)].codes.data);
    for (int64_t gi = 0; gi < ng; ++gi) {
      int32_t s = 0;
      for (int64_t k = gi * g; k < std::min(K, (gi + 1) * g); ++k) s += xq[k];
      xsum[size_t(m * ng + gi)] = s;
    }
  }
#pragma omp parallel
  {
    std::vector<uint8_t> wq(static_cast<size_t>(K));
    std::vector<float> ws(static_cast<size_t>(ng)), wm(static_cast<size_t>(ng));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      // one row of unsigned codes, one byte each, for the u8 x s8 dot
      unpack_uint_codes(we, W.row_codes(n), K, wq.data());
      const uint16_t* sc = W.scales.as<uint16_t>() + n * ng;
      const uint16_t* of = W.offsets.as<uint16_t>() + n * ng;
      for (int64_t gi = 0; gi < ng; ++gi) {
        ws[size_t(gi)] = bf16_to_f32(sc[gi]);
        wm[size_t(gi)] = bf16_to_f32(of[gi]);
      }
      for (int64_t m = 0; m < M; ++m) {
        const int8_t* xq = reinterpret_cast<const int8_t*>(acts[size_t(m)].codes.data);
        float acc = 0.0f;
        for (int64_t gi = 0; gi < ng; ++gi) {
          const int64_t s = gi * g, len = std::min(K, s + g) - s;
          int64_t dq = 0;  // sum_k x_q * w_q over the group
          for (int64_t c = 0; c < len; c += kIntSpan)
            dq += dot_u4_i8(wq.data() + s + c, xq + s + c, std::min(kIntSpan, len - c));
          // sum_k x_q * (w_q * s + m) = s * sum x_q w_q + m * sum x_q
          acc += float(dq) * ws[size_t(gi)] + float(xsum[size_t(m * ng + gi)]) * wm[size_t(gi)];
        }
        y[m * N + n] = acc * sx[size_t(m)];
      }
    }
  }
}

}  // namespace lowbit::cpu

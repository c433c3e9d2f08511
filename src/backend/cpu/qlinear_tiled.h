// The tile driver shared by the fp32-dot kernels: OpenMP over tiles of 4 weight rows; each tile decodes
// a chunk of its rows' codes into a small per-thread buffer and dots it with every activation row.
// Nothing larger than 4 x kChunk decoded weights exists at any time.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/cpu/simd.h"

namespace lowbit::cpu {

// Multiple of 32 (MX blocks, groups), 16 (NVFP4), 8/4 (1/2-bit and 6-bit packing) and 5 (5 trits per
// byte), so chunks start on byte and block boundaries.
inline constexpr int64_t kChunk = 640;

// decode(n, k0, k1, out): values of W row n, columns [k0, k1), as the activations xv multiply them.
// finish(m, n, acc) -> y[m, n]: applies what the decode left out (per-row scales).
template <typename Decode, typename Finish>
void tiled_linear_f32(const float* xv, int64_t M, int64_t N, int64_t K, Decode&& decode, Finish&& finish, float* y) {
  constexpr int R = 4;
  const int64_t tiles = (N + R - 1) / R;
#pragma omp parallel
  {
    std::vector<float> wbuf(static_cast<size_t>(R * kChunk));
    std::vector<float> acc(static_cast<size_t>(R * M));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t n0 = t * R;
      const int nr = int(std::min<int64_t>(R, N - n0));
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
        const int64_t len = std::min(kChunk, K - k0);
        const float* rows[R];
        for (int r = 0; r < R; ++r) {
          rows[r] = wbuf.data() + size_t(std::min(r, nr - 1)) * kChunk;  // a short tile repeats its last row
          if (r < nr) decode(n0 + r, k0, k0 + len, wbuf.data() + size_t(r) * kChunk);
        }
        for (int64_t m = 0; m < M; ++m) {
          float part[R];
          dot_rows_f32<R>(xv + m * K + k0, rows, len, part);
          for (int r = 0; r < R; ++r) acc[size_t(m * R + r)] += part[r];
        }
      }
      for (int64_t m = 0; m < M; ++m)
        for (int r = 0; r < nr; ++r) y[m * N + n0 + r] = finish(m, n0 + r, acc[size_t(m * R + r)]);
    }
  }
}

}  // namespace lowbit::cpu

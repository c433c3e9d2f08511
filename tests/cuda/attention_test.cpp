// Decode attention (RoPE of q and k, KV-cache write, tiles taken by the slots of a block, runs across
// blocks, the in-block and the last-block merges) against a CPU reference in double precision, for head
// layouts from stories260K to Llama-3 405B's group of 16, at positions on both sides of the tile boundaries,
// at contexts of one run and of several, and at long contexts where each slot takes several tiles in turn
// (online softmax across them; position p's row copied back from the cache); groups of 4 heads of 128
// dimensions in both tile rounds (grouped, the default, and per head). Skips without a GPU.
//
// Bound per output element: the GPU computes scores and weights in fp32 (__expf: relative error about
// 2^-21) and sums up to max_seq terms; 1e-5 * sum_t p_t |v_t| + 1e-6 * |out| covers both with margin.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/ops.cuh"
#include "scoped_knobs.h"
#include "util/rng.h"

namespace lowbit::cuda {
namespace {

bool gpu_present() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();
    return false;
  }
  return true;
}

struct Layout {
  int n_heads, n_kv, hd;
  bool interleaved;
};

struct Case {
  Layout L;
  int max_seq;
  std::vector<int> positions;
};

// Runs decode attention for every position of each case and checks each output against an fp64 reference
// (tolerance 1e-5 of the weighted magnitude).
void check_case(const Case& cs) {
  const Layout L = cs.L;
  const int max_seq = cs.max_seq;
  SCOPED_TRACE("heads " + std::to_string(L.n_heads) + "/" + std::to_string(L.n_kv) + " hd " + std::to_string(L.hd) +
               " max_seq " + std::to_string(max_seq));
  const int kvd = L.n_kv * L.hd, qd = L.n_heads * L.hd, half = L.hd / 2, group = L.n_heads / L.n_kv;
  const int max_chunks = attention_parts(max_seq);
  Rng rng(uint64_t(L.n_heads * 1000 + L.hd));
  std::vector<float> kc(size_t(max_seq) * kvd), vc(size_t(max_seq) * kvd), rope(size_t(max_seq) * L.hd);
  for (float& v : kc) v = rng.normal();
  for (float& v : vc) v = rng.normal();
  for (int p = 0; p < max_seq; ++p)
    for (int i = 0; i < half; ++i) {
      const float a = 0.37f * float(p) / float(i + 1);
      rope[(size_t(p) * half + i) * 2] = std::cos(a);
      rope[(size_t(p) * half + i) * 2 + 1] = std::sin(a);
    }
  DeviceBuffer d_kc(kc.size() * 4), d_vc(vc.size() * 4), d_rope(rope.size() * 4), d_qkv(size_t(qd + 2 * kvd) * 4),
      d_pos(4), d_out(size_t(qd) * 4), d_po(size_t(L.n_heads) * max_chunks * L.hd * 4),
      d_pml(size_t(L.n_heads) * max_chunks * 2 * 4), d_cnt(size_t(L.n_kv) * 4);
  LB_CUDA_CHECK(cudaMemcpy(d_kc.get(), kc.data(), kc.size() * 4, cudaMemcpyHostToDevice));
  LB_CUDA_CHECK(cudaMemcpy(d_vc.get(), vc.data(), vc.size() * 4, cudaMemcpyHostToDevice));
  LB_CUDA_CHECK(cudaMemcpy(d_rope.get(), rope.data(), rope.size() * 4, cudaMemcpyHostToDevice));
  LB_CUDA_CHECK(cudaMemset(d_cnt.get(), 0, d_cnt.size()));
  for (int pos : cs.positions) {
    SCOPED_TRACE("position " + std::to_string(pos));
    std::vector<float> qkv(static_cast<size_t>(qd + 2 * kvd));
    for (float& v : qkv) v = rng.normal();
    LB_CUDA_CHECK(cudaMemcpy(d_qkv.get(), qkv.data(), qkv.size() * 4, cudaMemcpyHostToDevice));
    LB_CUDA_CHECK(cudaMemcpy(d_pos.get(), &pos, 4, cudaMemcpyHostToDevice));
    attention_decode(d_qkv.get<float>(), d_pos.get<int>(), d_rope.get<float2>(), max_seq, L.n_heads, L.n_kv, L.hd,
                     L.interleaved, d_kc.get<float>(), d_vc.get<float>(), d_po.get<float>(), d_pml.get<float>(),
                     d_cnt.get<unsigned>(), d_out.get<float>(), nullptr);
    LB_CUDA_CHECK(cudaDeviceSynchronize());
    // reference: rotate q and k at pos (the kernel's fp32 formula), write the cache row, attend
    auto rot = [&](const float* src, float* dst) {
      for (int r = 0; r < half; ++r) {
        const int a = L.interleaved ? 2 * r : r, b = L.interleaved ? 2 * r + 1 : r + half;
        const float c = rope[(size_t(pos) * half + r) * 2], s = rope[(size_t(pos) * half + r) * 2 + 1];
        dst[a] = src[a] * c - src[b] * s;
        dst[b] = src[a] * s + src[b] * c;
      }
    };
    std::vector<float> q(static_cast<size_t>(qd));
    for (int h = 0; h < L.n_heads; ++h) rot(&qkv[size_t(h) * L.hd], &q[size_t(h) * L.hd]);
    for (int h = 0; h < L.n_kv; ++h) {
      rot(&qkv[size_t(qd + h * L.hd)], &kc[size_t(pos) * kvd + size_t(h) * L.hd]);
      for (int d = 0; d < L.hd; ++d) vc[size_t(pos) * kvd + size_t(h) * L.hd + d] = qkv[size_t(qd + kvd + h * L.hd + d)];
    }
    std::vector<float> out(static_cast<size_t>(qd)), gk(kc.size()), gv(vc.size());
    LB_CUDA_CHECK(cudaMemcpy(out.data(), d_out.get(), out.size() * 4, cudaMemcpyDeviceToHost));
    LB_CUDA_CHECK(cudaMemcpy(gk.data(), d_kc.get(), gk.size() * 4, cudaMemcpyDeviceToHost));
    LB_CUDA_CHECK(cudaMemcpy(gv.data(), d_vc.get(), gv.size() * 4, cudaMemcpyDeviceToHost));
    for (int j = 0; j < kvd; ++j) {
      EXPECT_NEAR(gk[size_t(pos) * kvd + j], kc[size_t(pos) * kvd + j], 1e-6 * (1 + std::fabs(kc[size_t(pos) * kvd + j])));
      EXPECT_EQ(gv[size_t(pos) * kvd + j], vc[size_t(pos) * kvd + j]);
    }
    int bad = 0;
    for (int h = 0; h < L.n_heads && bad < 5; ++h) {
      const int kvh = h / group;
      std::vector<double> s(static_cast<size_t>(pos + 1));
      double m = -1e300;
      for (int t = 0; t <= pos; ++t) {
        double acc = 0;
        for (int d = 0; d < L.hd; ++d) acc += double(q[size_t(h) * L.hd + d]) * kc[size_t(t) * kvd + size_t(kvh) * L.hd + d];
        s[size_t(t)] = acc / std::sqrt(double(L.hd));
        m = std::max(m, s[size_t(t)]);
      }
      double l = 0;
      for (double& v : s) l += (v = std::exp(v - m));
      for (int d = 0; d < L.hd && bad < 5; ++d) {
        double y = 0, mag = 0;
        for (int t = 0; t <= pos; ++t) {
          const double v = vc[size_t(t) * kvd + size_t(kvh) * L.hd + d];
          y += s[size_t(t)] / l * v;
          mag += s[size_t(t)] / l * std::fabs(v);
        }
        const double got = out[size_t(h) * L.hd + d];
        if (!(std::fabs(got - y) <= 1e-5 * mag + 1e-6 * std::fabs(y))) {
          ADD_FAILURE() << "head " << h << " dim " << d << ": got " << got << ", reference " << y;
          ++bad;
        }
      }
    }
  }
}

void check_attention_cases(const std::vector<Case>& cases) {
  for (const Case& cs : cases) check_case(cs);
}

TEST(CudaAttention, DecodeMatchesReferenceAcrossTiles) {
  if (!gpu_present()) GTEST_SKIP() << "no GPU";
  constexpr int T = kAttnTile;
  const std::vector<int> short_ctx = {0, 1, T - 1, T, T + 1, 2 * T + 3, 299};
  // beyond kAttnMaxRuns x kAttnMaxSlots tiles every slot takes two or more tiles in turn
  constexpr int kSlotTiles = kAttnMaxRuns * kAttnMaxSlots * T;
  static_assert(kSlotTiles + 3 * T < 4700, "the long cases must give slots several tiles");
  const std::vector<int> long_ctx = {kAttnMaxRuns * T - 1, kAttnMaxRuns * T, 1100, 1499, kSlotTiles - 1, kSlotTiles,
                                     kSlotTiles + T + 5, 4699};
  const std::vector<Case> cases = {Case{{8, 4, 8, true}, 300, short_ctx},    Case{{32, 8, 128, false}, 300, short_ctx},
                                   Case{{4, 4, 64, false}, 300, short_ctx},   Case{{16, 1, 64, false}, 300, short_ctx},
                                   Case{{6, 2, 12, false}, 300, short_ctx},   Case{{32, 8, 128, false}, 4700, long_ctx},
                                   Case{{6, 2, 12, false}, 4700, long_ctx},   Case{{8, 1, 256, true}, 4700, long_ctx}};
  check_attention_cases(cases);
  // groups of 4 heads of 128 dimensions take the grouped tile round by default: the per-head round too
  // (LOWBIT_ATTN_GROUPED=0, re-read through the knobs' epoch)
  SCOPED_TRACE("LOWBIT_ATTN_GROUPED=0");
  ScopedKnobs knobs;
  knobs.set("LOWBIT_ATTN_GROUPED", "0");
  for (const Case& cs : cases)
    if (cs.L.n_heads == 4 * cs.L.n_kv && cs.L.hd == 128) check_case(cs);
}

TEST(CudaAttention, FewerSlotsPerBlock) {
  // LOWBIT_ATTN_SLOTS caps the slots per block (smaller blocks, an A/B knob):
  // 2 and 1 slots change the runs, rounds and merges; the Llama 3 layout (grouped round) at short and long
  // contexts, and a head dimension of 256
  if (!gpu_present()) GTEST_SKIP() << "no GPU";
  ScopedKnobs knobs;
  for (const char* slots : {"2", "1"}) {
    SCOPED_TRACE(std::string("LOWBIT_ATTN_SLOTS=") + slots);
    knobs.set("LOWBIT_ATTN_SLOTS", slots);
    check_attention_cases({Case{{32, 8, 128, false}, 300, {0, 1, 31, 32, 33, 99, 299}},
                           Case{{32, 8, 128, false}, 4700, {1023, 1100, 4095, 4699}},
                           Case{{8, 1, 256, true}, 4700, {0, 130, 4699}}});
  }
}

}  // namespace
}  // namespace lowbit::cuda

// GPU GEMV / dequantization / GEMM against the CPU reference (dequantize_row + fp64 dot) for every weight
// format, odd shapes and the Llama-3.1-8B shapes, M = 1..8, every variant and epilogue. Each test skips
// when no GPU is present.
//
// Error bound of one output y[m, n] (derived from the kernels' arithmetic; w = dequantized weight, x the
// (normalized) input, S = sum_k |w_k x_k|, for group-affine formats S = sum_k (|w_k - m_g| + |m_g|) |x_k|
// since the kernel computes s * dot(q, x) and m * sum(x) separately):
//  * x enters the tensor cores as 2^e (hi + lo) with fp16 hi, lo: |x - 2^e (hi + lo)| <= 2^-22 |x| + 2^(e-25),
//    and 2^e <= max|x| 2^-13, so this adds 2^-22 S + 2^-38 max|x| sum_k |w_k|.
//  * integer weights (int8 / 4 / 2 / 1, ternary) with one token (the stream kernel's integer path) take x
//    as the 4 byte limbs of n = rint(x 2^-e 2^24): |x - 2^e n 2^-24| <= 2^(e-25) with 2^e <= max|x| 2^-5,
//    and the codes (w - m) / s multiply them exactly in s32: this adds 2^-30 max|x| sum_k |w_k - m_g|
//    (m_g = 0 for int8 and ternary; ternary's codes are w / s + 1: sum_k (|w_k| + s) there).
//  * products of fp16 values are exact in fp32; K-1 additions (tensor cores may truncate: unit 2^-23) and
//    at most 64 more roundings in the scale folds and the epilogue: (K + 64) 2^-23 S. The scalar f32 /
//    bf16 / fp16 kernel (round to nearest) is inside the same bound.
//  * the fused RMSNorm computes rsqrt(mean(x^2) + eps) in fp32: the sum of squares has relative error
//    <= K 2^-24, the square root halves it, 4 more roundings for the division, sqrt, and two products:
//    relative error (K/2 + 8) 2^-24 on every x, so (K/2 + 8) 2^-24 S more.
//  * bf16 outputs: + 2^-8 |y| (and the bound itself); residual add: + 2^-24 (|old| + |y|); SwiGLU
//    silu(g) u: |silu'| <= 1.1, so 1.1 |u| B_g + (|silu(g)| + 1.1 B_g) B_u + 8 2^-24 |silu(g) u|.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/gemv_decode.h"
#include "backend/cuda/linear.cuh"
#include "backend/cuda/weights.cuh"
#include "scoped_knobs.h"
#include "formats/codec.h"
#include "formats/format.h"
#include "formats/qtensor.h"
#include "formats/random_codes.h"
#include "util/error.h"
#include "util/half.h"
#include "util/rng.h"

namespace lowbit::cuda {
namespace {

bool gpu_present(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    *why = e != cudaSuccess ? std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e) : "no CUDA device";
    cudaGetLastError();  // clear the sticky error of a failed runtime init
    return false;
  }
  return true;
}

#define REQUIRE_GPU()                                                    \
  do {                                                                   \
    std::string why_;                                                    \
    if (!gpu_present(&why_)) GTEST_SKIP() << "no GPU: " << why_;         \
  } while (0)

std::vector<Format> weight_formats() {
  std::vector<Format> out;
  for (const FormatInfo& fi : all_formats())
    if (fi.weight_ok) out.push_back(fi.id);
  return out;
}

QTensor quantized(Format f, int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(size_t(rows * cols));
  for (float& v : x) v = 0.05f * rng.normal();
  return quantize(x.data(), rows, cols, f, QuantOptions{}, std::string(format_name(f)) + "#" + std::to_string(seed));
}

// A quantized gate/up pair (rows x cols each, seeds *seed and *seed + 1) and its interleaved GPU weight.
struct GluPair {
  QTensor gate, up;
  GpuWeight w;
};
GluPair glu_pair(Format f, int64_t rows, int64_t cols, uint64_t* seed, cudaStream_t s) {
  GluPair p;
  p.gate = quantized(f, rows, cols, (*seed)++);
  p.up = quantized(f, rows, cols, (*seed)++);
  p.w = upload(concat_glu(repack_for_gpu(p.gate), repack_for_gpu(p.up)), s);
  return p;
}

std::vector<float> gaussian(size_t n, uint64_t seed, float sigma = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = sigma * rng.normal();
  return v;
}

template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) { LB_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T))); }
  Dev(const std::vector<T>& h) : Dev(h.size()) { upload(h); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  void upload(const std::vector<T>& h) {
    LB_CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n);
    LB_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

// Reference outputs and error bounds (header comment) of the rows of `parts`, concatenated, for x[M, K].
struct Reference {
  int64_t rows = 0;
  std::vector<double> y, bound;  // [M][rows]
};

Reference reference(const std::vector<const QTensor*>& parts, const std::vector<float>& x, int M, const float* norm_w,
                    float eps) {
  const int64_t K = parts[0]->cols;
  Reference ref;
  for (const QTensor* p : parts) ref.rows += p->rows;
  // normalized x in fp64
  std::vector<double> xn(size_t(M * K)), amax(size_t(M), 0.0);
  for (int m = 0; m < M; ++m) {
    double ss = 0;
    for (int64_t k = 0; k < K; ++k) ss += double(x[size_t(m * K + k)]) * x[size_t(m * K + k)];
    const double r = norm_w ? 1.0 / std::sqrt(ss / double(K) + double(eps)) : 1.0;
    for (int64_t k = 0; k < K; ++k) {
      const double v = double(x[size_t(m * K + k)]) * r * (norm_w ? double(norm_w[k]) : 1.0);
      xn[size_t(m * K + k)] = v;
      amax[size_t(m)] = std::max(amax[size_t(m)], std::fabs(v));
    }
  }
  ref.y.assign(size_t(M * ref.rows), 0.0);
  ref.bound.assign(size_t(M * ref.rows), 0.0);
  std::vector<std::pair<const QTensor*, int64_t>> rowsrc;
  for (const QTensor* p : parts)
    for (int64_t r = 0; r < p->rows; ++r) rowsrc.push_back({p, r});
  const double u23 = std::ldexp(1.0, -23), u24 = std::ldexp(1.0, -24);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t n = 0; n < ref.rows; ++n) {
    const QTensor& t = *rowsrc[size_t(n)].first;
    const int64_t r = rowsrc[size_t(n)].second;
    std::vector<float> w(static_cast<size_t>(K));
    dequantize_row(t, r, w.data());
    const bool affine = t.info().scheme == ScaleScheme::GroupAffine;
    const bool limbs = M == 1 && has_imma(codec_for(t.fmt));
    for (int m = 0; m < M; ++m) {
      double y = 0, S = 0, W = 0, Wq = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double wk = w[size_t(k)], xk = xn[size_t(m * K + k)];
        y += wk * xk;
        W += std::fabs(wk);
        if (affine) {
          const double mg = bf16_to_f32(t.offsets.as<uint16_t>()[r * t.nscales_per_row() + k / t.group]);
          S += (std::fabs(wk - mg) + std::fabs(mg)) * std::fabs(xk);
          Wq += std::fabs(wk - mg);
        } else {
          S += std::fabs(wk * xk);
          Wq += std::fabs(wk) + (t.fmt == Format::TERNARY ? double(t.tensor_scale) : 0.0);
        }
      }
      double b = (double(K) + 64.0) * u23 * S + std::ldexp(S, -22) + std::ldexp(amax[size_t(m)], -38) * W;
      if (limbs) b += std::ldexp(amax[size_t(m)], -30) * Wq;
      if (norm_w) b += (double(K) / 2 + 8) * u24 * S;
      b += 1e-30;
      ref.y[size_t(m * ref.rows + n)] = y;
      ref.bound[size_t(m * ref.rows + n)] = b;
    }
  }
  return ref;
}

// Compares a GEMV output [M, ld] with the reference under the epilogue; checks untouched padding columns.
void check_output(const std::string& what, GemvOut kind, const Reference& ref, const std::vector<float>& got, int M,
                  int64_t ld, const std::vector<float>& before, int64_t ff) {
  const bool glu = kind == GemvOut::SwiGluF32 || kind == GemvOut::SwiGluBF16;
  const bool bf16 = kind == GemvOut::StoreBF16 || kind == GemvOut::SwiGluBF16;
  const int64_t n_out = glu ? ff : ref.rows;
  int failures = 0;
  for (int m = 0; m < M && failures < 5; ++m) {
    for (int64_t n = 0; n < ld && failures < 5; ++n) {
      const float g = got[size_t(m * ld + n)];
      if (n >= n_out) {  // padding columns keep their poison
        if (std::memcmp(&g, &before[size_t(m * ld + n)], 4) != 0) {
          ADD_FAILURE() << what << ": column " << n << " >= " << n_out << " of token " << m << " was written";
          ++failures;
        }
        continue;
      }
      double y, b;
      if (glu) {
        const double gv = ref.y[size_t(m * ref.rows + n)], uv = ref.y[size_t(m * ref.rows + ff + n)];
        const double bg = ref.bound[size_t(m * ref.rows + n)], bu = ref.bound[size_t(m * ref.rows + ff + n)];
        const double sg = gv / (1.0 + std::exp(-gv));
        y = sg * uv;
        b = 1.1 * std::fabs(uv) * bg + (std::fabs(sg) + 1.1 * bg) * bu + 8 * std::ldexp(std::fabs(y), -24) + 1e-30;
      } else {
        y = ref.y[size_t(m * ref.rows + n)];
        b = ref.bound[size_t(m * ref.rows + n)];
      }
      if (kind == GemvOut::AddF32) {
        const double old = before[size_t(m * ld + n)];
        b += std::ldexp(std::fabs(old) + std::fabs(y), -24);
        y += old;
      }
      if (bf16) b += std::ldexp(std::fabs(y) + b, -8);
      const double err = std::fabs(double(g) - y);
      if (!(err <= b)) {  // NaN fails too
        ADD_FAILURE() << what << ": token " << m << " output " << n << ": got " << g << ", reference " << y
                      << ", |error| " << err << " > bound " << b;
        ++failures;
      }
    }
  }
}

struct Gpu {
  cudaStream_t s = nullptr;
  Gpu() { LB_CUDA_CHECK(cudaStreamCreate(&s)); }
  ~Gpu() { cudaStreamDestroy(s); }
};

// Runs one GEMV of weight `w` (built from `parts`) with fresh x and poisoned outputs, and checks it.
// blas: run gemm_parts (short prompts on plain weights) through that cuBLAS handle instead of gemv().
void run_and_check(Gpu& gpu, const GpuWeight& w, const std::vector<const QTensor*>& parts, int M, GemvOut kind,
                   GemvVariant v, bool norm, uint64_t seed, const Reference* cached = nullptr,
                   const std::vector<float>* cached_x = nullptr, cublasHandle_t blas = nullptr) {
  const int64_t K = w.view.cols;
  const std::vector<float> x = cached_x ? *cached_x : gaussian(size_t(M * K), seed);
  const std::vector<float> nw = gaussian(size_t(K), seed + 1, 0.5f);
  std::vector<float> nw_abs(nw);
  for (float& q : nw_abs) q = 1.0f + std::fabs(q);
  const Reference ref = cached ? *cached : reference(parts, x, M, norm ? nw_abs.data() : nullptr, 1e-5f);
  const bool glu = kind == GemvOut::SwiGluF32 || kind == GemvOut::SwiGluBF16;
  const bool bf16 = kind == GemvOut::StoreBF16 || kind == GemvOut::SwiGluBF16;
  const int64_t n_out = w.out_features(), ld = n_out + 3;
  // poison: NaN where outputs go (AddF32: random old values), a sentinel in the padding columns
  std::vector<float> before(size_t(M * ld));
  Rng rng(seed + 2);
  for (int m = 0; m < M; ++m)
    for (int64_t n = 0; n < ld; ++n) {
      float v0 = n >= n_out ? -12345.5f : (kind == GemvOut::AddF32 ? rng.normal() : NAN);
      if (bf16) v0 = bf16_to_f32(f32_to_bf16(v0));
      before[size_t(m * ld + n)] = v0;
    }
  Dev<float> dx(x), dnw(nw_abs);
  std::vector<float> got(size_t(M * ld));
  GemvEpilogue ep;
  ep.kind = kind;
  ep.ld = ld;
  ep.norm_weight = norm ? dnw.p : nullptr;
  ep.norm_eps = 1e-5f;
  if (bf16) {
    std::vector<uint16_t> hb(before.size());
    for (size_t i = 0; i < hb.size(); ++i) hb[i] = f32_to_bf16(before[i]);
    Dev<uint16_t> dout(hb);
    ep.out = dout.p;
    gemv(w, dx.p, M, ep, gpu.s, v);
    LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
    const std::vector<uint16_t> o = dout.download();
    for (size_t i = 0; i < o.size(); ++i) got[i] = bf16_to_f32(o[i]);
  } else {
    Dev<float> dout(before);
    ep.out = dout.p;
    if (blas) {
      Dev<uint8_t> xs(gemm_parts_scratch_x(w, M));
      Dev<float> cs(gemm_parts_scratch_c(w, M) / sizeof(float));
      ASSERT_TRUE(gemm_parts(blas, w, dx.p, M, ep, xs.p, cs.p, gpu.s)) << format_name(w.fmt) << " M=" << M;
      LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
    } else {
      gemv(w, dx.p, M, ep, gpu.s, v);
      LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
    }
    got = dout.download();
  }
  const std::string what = std::string(format_name(w.fmt)) + " [" + std::to_string(w.logical_rows()) + "x" +
                           std::to_string(K) + "] M=" + std::to_string(M) + " " +
                           (blas ? "gemm_parts" : gemv_variant_name(v)) + (norm ? " +norm" : "") +
                           " out=" + std::to_string(int(kind));
  check_output(what, kind, ref, got, M, ld, before, glu ? w.view.ff : 0);
}

// ---- tests ----------------------------------------------------------------------------------------------

TEST(CudaGemv, EveryFormatOddShapesEveryVariant) {
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 1;
  struct Sh {
    int64_t n, k;
  };
  for (Format f : weight_formats()) {
    for (const Sh sh : {Sh{19, 64}, Sh{37, 576}, Sh{301, 1536}}) {
      const QTensor t = quantized(f, sh.n, sh.k, seed++);
      const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
      for (int M : {1, 3, 8}) {
        for (int v = 0; v < kNumGemvVariants; ++v)
          run_and_check(gpu, w, {&t}, M, GemvOut::StoreF32, GemvVariant(v), M == 3, seed++);
      }
    }
  }
}

TEST(CudaGemv, OddKAndUnalignedInput) {
  // K odd (no 8-byte pair loads, padded packets) and, for even K, x one float off 8-byte alignment
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 900;
  for (Format f : weight_formats()) {
    for (int64_t K : {int64_t(77), int64_t(130)}) {
      const QTensor t = quantized(f, 13, K, seed++);
      const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
      for (int M : {1, 8}) {
        const std::vector<float> x = gaussian(size_t(M * K), seed++);
        const Reference ref = reference({&t}, x, M, nullptr, 1e-5f);
        std::vector<float> shifted(x.size() + 1, 0.0f);
        std::copy(x.begin(), x.end(), shifted.begin() + 1);
        Dev<float> dx(shifted), dy(size_t(M * 13));
        GemvEpilogue ep;
        ep.out = dy.p;
        for (GemvVariant v : {GemvVariant::Split8, GemvVariant::Tiles8x1, GemvVariant::Reference}) {
          LB_CUDA_CHECK(cudaMemset(dy.p, 0xff, dy.n * 4));  // NaN poison
          gemv(w, dx.p + 1, M, ep, gpu.s, v);
          LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
          const std::vector<float> y = dy.download();
          for (int64_t i = 0; i < M * 13; ++i)
            EXPECT_LE(std::fabs(double(y[size_t(i)]) - ref.y[size_t(i)]), ref.bound[size_t(i)])
                << format_name(f) << " K=" << K << " M=" << M << " " << gemv_variant_name(v) << " output " << i;
        }
      }
    }
  }
}

TEST(CudaGemv, PersistentBlocksManyTiles) {
  // more tile groups than two blocks per SM: persistent blocks loop over groups with x staged once
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 950;
  for (Format f : {Format::INT4, Format::BF16, Format::NVFP4, Format::TERNARY_P5, Format::MXFP6_E2M3, Format::FP8_E4M3,
                   Format::INT1}) {
    SCOPED_TRACE(format_name(f));
    const QTensor t = quantized(f, 9601, 96, seed++);
    const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
    const GluPair glu = glu_pair(f, 4803, 96, &seed, gpu.s);
    for (int M : {1, 8})
      for (GemvVariant v : {GemvVariant::Split4, GemvVariant::Persist2x4, GemvVariant::Persist8x1, GemvVariant::Stream,
                            GemvVariant::Auto}) {
        run_and_check(gpu, w, {&t}, M, GemvOut::StoreF32, v, M == 8, seed++);
        run_and_check(gpu, glu.w, {&glu.gate, &glu.up}, M, GemvOut::SwiGluF32, v, false, seed++);
      }
  }
}

TEST(CudaGemv, StreamSplitsTilesBetweenWarps) {
  // the stream variant at a size where every warp gets several packets: tiles split at arbitrary packets
  // (pieces finished through shared memory) and warps that end one tile and start the next; every
  // epilogue, 1 and 4 tokens, and the same weight many times in a row
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 970;
  for (Format f : {Format::INT4, Format::BF16, Format::INT8, Format::FP8_E4M3, Format::NVFP4, Format::MXFP4,
                   Format::INT2, Format::TERNARY, Format::MXFP6_E3M2}) {
    SCOPED_TRACE(format_name(f));
    const QTensor t = quantized(f, 4001, 4096, seed++);
    const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
    const GluPair glu = glu_pair(f, 1500, 4096, &seed, gpu.s);
    for (int M : {1, 4}) {
      for (int rep = 0; rep < 3; ++rep) run_and_check(gpu, w, {&t}, M, GemvOut::StoreF32, GemvVariant::Stream, rep == 0, seed++);
      run_and_check(gpu, w, {&t}, M, GemvOut::AddF32, GemvVariant::Stream, false, seed++);
      run_and_check(gpu, glu.w, {&glu.gate, &glu.up}, M, GemvOut::SwiGluF32, GemvVariant::Stream, true, seed++);
    }
  }
}

TEST(CudaGemv, StreamTriggerAndLoadPlacements) {
  // the stream kernels with the next kernel's trigger after pdl_wait(), once x has arrived and after the
  // staging (LOWBIT_GEMV_TRIGGER), and with the weight loads beyond the early ones once the warp's x has
  // arrived, after the staging or once the block has all of x, none before pdl_wait() (LOWBIT_GEMV_REST,
  // LOWBIT_GEMV_EARLY), with warp 0 alone
  // waiting for the previous kernel (LOWBIT_PDL_WAIT), with a block per multiprocessor and runs of unequal
  // length (LOWBIT_GEMV_SPLIT=balanced, the default) and with runs of ceil(tiles / SMs) tiles (even), every
  // format, one token: Q|K|V-sized with the RMSNorm prologue, o-sized with the residual add. (In the default
  // build the tensor-core kernel has the defaults of TRIGGER, REST and PDL_WAIT compiled in, so there these
  // settings vary the plain kernels' placements and EARLY / SPLIT everyone's; a -DLOWBIT_GEMV_AB_KNOBS=ON build
  // runs the tensor-core kernel's too.)
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 1900;
  const char* names[5] = {"LOWBIT_GEMV_TRIGGER", "LOWBIT_GEMV_REST", "LOWBIT_GEMV_EARLY", "LOWBIT_PDL_WAIT",
                          "LOWBIT_GEMV_SPLIT"};
  ScopedKnobs knobs;
  for (Format f : weight_formats()) {
    SCOPED_TRACE(format_name(f));
    const QTensor qkv = random_qtensor(f, 6144, 4096, 0, seed++, "wqkv");
    const GpuWeight wqkv = upload(repack_for_gpu(qkv), gpu.s);
    const QTensor o = random_qtensor(f, 4096, 4096, 0, seed++, "wo");
    const GpuWeight wo = upload(repack_for_gpu(o), gpu.s);
    // {trigger, rest, early, pdl wait, split}
    const char* settings[][5] = {{"wait", nullptr, nullptr, "one", nullptr},
                                 {"arrived", nullptr, nullptr, nullptr, "balanced"},
                                 {"staged", "arrived", nullptr, nullptr, nullptr},
                                 {nullptr, "late", nullptr, nullptr, "even"},
                                 {nullptr, "reduced", "0", "one", nullptr},
                                 {nullptr, "reduced", "1", nullptr, nullptr},
                                 {nullptr, nullptr, "-1", "one", "balanced"}};
    for (const auto& st : settings) {
      std::string trace;
      for (const char* v : st) trace += std::string(v ? v : "-") + " ";
      SCOPED_TRACE(trace);
      for (int i = 0; i < 5; ++i) knobs.set(names[i], st[i]);
      run_and_check(gpu, wqkv, {&qkv}, 1, GemvOut::StoreF32, GemvVariant::Auto, true, seed++);
      run_and_check(gpu, wo, {&o}, 1, GemvOut::AddF32, GemvVariant::Auto, false, seed++);
    }
  }
}

TEST(CudaGemv, StreamKSlices) {
  // LOWBIT_GEMV_KSPLIT: the residual-add launches cut K into slices, each staged and summed by its own blocks
  // and added to the output atomically; every format at o's and down's shapes, a shape where K allows 3
  // slices of whole groups (not 4), groups wider than 256 columns, and launches the slices do not apply to
  // (a norm weight, a plain store, M > 1) run as before
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 1950;
  ScopedKnobs knobs;
  const auto expected = [](Format f, int64_t K, int group, int want) {
    const GpuCodec c = codec_for(f);  // (the stream kernel's codec; plain and ternary-1.6 take no slices)
    if (is_plain(c) || c == GpuCodec::T5) return 1;
    const int64_t unit = group > 256 && format_info(f).scheme == ScaleScheme::GroupAffine ? group : 256;
    int S = want;
    while (S > 1 && K % (unit * S) != 0) --S;
    return S;
  };
  struct Case {
    int64_t n, k;
    int group;
    const char* slices;
  };
  for (Format f : weight_formats()) {
    SCOPED_TRACE(format_name(f));
    const bool affine = format_info(f).scheme == ScaleScheme::GroupAffine;
    for (const Case cs : {Case{4096, 4096, 0, "4"}, Case{4096, 14336, 0, "4"}, Case{4096, 14336, 0, "8"},
                          Case{301, 1536, 0, "4"}, Case{520, 4096, affine ? 512 : 0, "8"}, Case{64, 2048, 0, "2"}}) {
      SCOPED_TRACE(std::to_string(cs.n) + "x" + std::to_string(cs.k) + " g" + std::to_string(cs.group) +
                   " KSPLIT=" + cs.slices);
      const QTensor t = random_qtensor(f, cs.n, cs.k, cs.group, seed++, "w");
      const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
      knobs.set("LOWBIT_GEMV_KSPLIT", cs.slices);
      knobs.set("LOWBIT_GEMV_KSPLIT_MIN_K", "0");  // (default 8192: down only)
      Dev<float> dx(std::vector<float>(size_t(cs.k), 1.0f));
      GemvEpilogue ep;
      ep.kind = GemvOut::AddF32;
      const int want = expected(f, cs.k, t.group, std::atoi(cs.slices));
      EXPECT_EQ(gemv_stream_ksplit(w, dx.p, 1, ep), want);
      run_and_check(gpu, w, {&t}, 1, GemvOut::AddF32, GemvVariant::Auto, false, seed++);
      // not split: a norm weight, a store, two tokens; and K below LOWBIT_GEMV_KSPLIT_MIN_K
      GemvEpilogue store = ep;
      store.kind = GemvOut::StoreF32;
      EXPECT_EQ(gemv_stream_ksplit(w, dx.p, 1, store), 1);
      EXPECT_EQ(gemv_stream_ksplit(w, dx.p, 2, ep), 1);
      run_and_check(gpu, w, {&t}, 1, GemvOut::StoreF32, GemvVariant::Auto, true, seed++);
      run_and_check(gpu, w, {&t}, 2, GemvOut::AddF32, GemvVariant::Auto, false, seed++);
      knobs.set("LOWBIT_GEMV_KSPLIT_MIN_K", std::to_string(cs.k + 1).c_str());
      EXPECT_EQ(gemv_stream_ksplit(w, dx.p, 1, ep), 1);
    }
  }
}

TEST(CudaGemv, PlainFormatsK172) {
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 1000;
  for (Format f : {Format::F32, Format::BF16, Format::F16}) {
    const QTensor t = quantized(f, 75, 172, seed++);
    const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
    for (int M : {1, 3, 8})
      for (int v = 0; v < kNumGemvVariants; ++v)
        run_and_check(gpu, w, {&t}, M, GemvOut::StoreF32, GemvVariant(v), v == 0, seed++);
  }
}

TEST(CudaGemv, LlamaShapes) {
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 2000;
  for (Format f : weight_formats()) {
    SCOPED_TRACE(format_name(f));
    // Q|K|V concatenated (4096 + 1024 + 1024 rows), o, down (K = 14336)
    const QTensor q = random_qtensor(f, 4096, 4096, 0, seed++, "wq"), k = random_qtensor(f, 1024, 4096, 0, seed++, "wk"),
                  vv = random_qtensor(f, 1024, 4096, 0, seed++, "wv");
    const GpuWeightHost hq = repack_for_gpu(q), hk = repack_for_gpu(k), hv = repack_for_gpu(vv);
    const GpuWeight qkv = upload(concat_rows({&hq, &hk, &hv}), gpu.s);
    run_and_check(gpu, qkv, {&q, &k, &vv}, 1, GemvOut::StoreF32, GemvVariant::Auto, true, seed++);
    run_and_check(gpu, upload(hq, gpu.s), {&q}, 1, GemvOut::AddF32, GemvVariant::Auto, false, seed++);
    const QTensor down = random_qtensor(f, 4096, 14336, 0, seed++, "w2");
    const GpuWeight wd = upload(repack_for_gpu(down), gpu.s);
    run_and_check(gpu, wd, {&down}, 1, GemvOut::AddF32, GemvVariant::Auto, false, seed++);
    // M = 8 with K = 14336 walks several K-tiles of x in shared memory
    run_and_check(gpu, wd, {&down}, 8, GemvOut::StoreF32, GemvVariant::Split8, false, seed++);
    // a 6-token prompt's down: the stream kernel in passes of the most tokens whose x fits (tensor-core
    // formats), the tiled kernel (plain)
    run_and_check(gpu, wd, {&down}, 6, GemvOut::AddF32, GemvVariant::Auto, false, seed++);
    // gate/up pair with the fused SwiGLU
    const QTensor gate = random_qtensor(f, 14336, 4096, 0, seed++, "w1"), up = random_qtensor(f, 14336, 4096, 0, seed++, "w3");
    const GpuWeight w13 = upload(concat_glu(repack_for_gpu(gate), repack_for_gpu(up)), gpu.s);
    run_and_check(gpu, w13, {&gate, &up}, 1, GemvOut::SwiGluF32, GemvVariant::Auto, true, seed++);
  }
}

// The L2 prefetcher's plan (gemv_stream_read_order): the chunks of a launch cover every byte its stream kernel
// reads (codes, scales, per-row values), stay inside the buffers, are 16-byte aligned, and add at most the
// alignment to the bytes; and the stream kernels give correct results on the fewer multiprocessors left to
// them when some are reserved (gemv_set_reserved_sms), K slices included.
TEST(CudaGemv, StreamReadOrderAndReservedSms) {
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 2600;
  struct Reserved {  // restores the default however the test ends
    ~Reserved() { gemv_set_reserved_sms(0); }
  } reserved;
  const auto covered = [](const GpuWeight& w, const std::vector<PrefetchChunk>& chunks) {
    struct Buf {
      const uint8_t* p;
      size_t n;
      std::vector<uint8_t> hit;
    };
    std::vector<Buf> bufs;
    for (const DeviceBuffer* b : {&w.codes, &w.scales, &w.row_scale})
      if (b->size()) bufs.push_back({b->get<uint8_t>(), b->size(), std::vector<uint8_t>(b->size() / 16, 0)});
    size_t total = 0, need = 0;
    for (const PrefetchChunk& c : chunks) {
      const uint8_t* p = static_cast<const uint8_t*>(c.ptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
      EXPECT_TRUE(c.bytes > 0 && c.bytes % 16 == 0);
      bool inside = false;
      for (Buf& b : bufs)
        if (p >= b.p && p + c.bytes <= b.p + b.n) {
          inside = true;
          for (size_t i = size_t(p - b.p) / 16; i < size_t(p - b.p + c.bytes) / 16; ++i) b.hit[i] = 1;
        }
      EXPECT_TRUE(inside) << "a chunk of " << c.bytes << " bytes outside the weight's buffers";
      total += c.bytes;
    }
    for (const Buf& b : bufs) {
      need += b.hit.size() * 16;
      EXPECT_EQ(std::count(b.hit.begin(), b.hit.end(), 0), 0) << "bytes of a " << b.n << "-byte buffer never fetched";
    }
    EXPECT_LE(total, need + 32 * chunks.size());  // overlap only from rounding pieces out to 16 bytes
    return total;
  };
  for (Format f : {Format::INT4, Format::INT8, Format::BF16, Format::NVFP4, Format::TERNARY}) {
    SCOPED_TRACE(format_name(f));
    const QTensor o = random_qtensor(f, 4096, 4096, 0, seed++, "wo"), down = random_qtensor(f, 4096, 14336, 0, seed++, "w2");
    const QTensor gate = random_qtensor(f, 1536, 4096, 0, seed++, "w1"), up = random_qtensor(f, 1536, 4096, 0, seed++, "w3");
    const GpuWeight wo = upload(repack_for_gpu(o), gpu.s), wd = upload(repack_for_gpu(down), gpu.s);
    const GpuWeight w13 = upload(concat_glu(repack_for_gpu(gate), repack_for_gpu(up)), gpu.s);
    Dev<float> dx(std::vector<float>(14336, 1.0f)), dy(std::vector<float>(4096, 0.0f)), nw(std::vector<float>(4096, 1.0f));
    for (int r : {0, 8}) {
      SCOPED_TRACE("reserved SMs " + std::to_string(r));
      gemv_set_reserved_sms(r);
      EXPECT_EQ(gemv_reserved_sms(), r);
      GemvEpilogue add, glu;
      add.kind = GemvOut::AddF32;
      add.out = dy.p;
      glu.kind = GemvOut::SwiGluF32;
      glu.out = dy.p;
      glu.norm_weight = nw.p;
      for (uint32_t chunk : {16u << 10, 4096u}) {
        for (const auto& [w, ep] : {std::pair<const GpuWeight*, GemvEpilogue>{&wo, add}, {&wd, add}, {&w13, glu}}) {
          std::vector<PrefetchChunk> order;
          ASSERT_TRUE(gemv_stream_read_order(*w, dx.p, ep, chunk, order));
          for (const PrefetchChunk& c : order) EXPECT_LE(c.bytes, chunk);
          const size_t total = covered(*w, order);
          EXPECT_GE(total, w->bytes);
        }
      }
      run_and_check(gpu, wo, {&o}, 1, GemvOut::AddF32, GemvVariant::Auto, false, seed++);
      run_and_check(gpu, wd, {&down}, 1, GemvOut::AddF32, GemvVariant::Auto, false, seed++);
      run_and_check(gpu, w13, {&gate, &up}, 1, GemvOut::SwiGluF32, GemvVariant::Auto, true, seed++);
    }
  }
  std::vector<PrefetchChunk> none;
  GemvEpilogue ep;
  ep.out = none.data();
  EXPECT_THROW(gemv_stream_read_order(GpuWeight{}, nullptr, ep, 10, none), Error);  // chunk not a multiple of 16
}

// Short prompts on plain bf16 / fp16 weights through cuBLAS (gemm_parts: x in three parts that sum to it
// exactly, so the GEMV's bound holds): the Llama shapes and an odd one, M = 2..8, every epilogue; other formats
// and M = 1 are refused (nothing launched).
TEST(CudaGemv, PromptGemmPartsPlainFormats) {
  REQUIRE_GPU();
  Gpu gpu;
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  uint64_t seed = 5000;
  for (Format f : {Format::BF16, Format::F16}) {
    SCOPED_TRACE(format_name(f));
    const QTensor q = random_qtensor(f, 6144, 4096, 0, seed++, "wqkv"), odd = quantized(f, 301, 1540, seed++);
    const QTensor down = random_qtensor(f, 4096, 14336, 0, seed++, "w2");
    const GpuWeight wq = upload(repack_for_gpu(q), gpu.s), wo = upload(repack_for_gpu(odd), gpu.s),
                    wd = upload(repack_for_gpu(down), gpu.s);
    run_and_check(gpu, wq, {&q}, 6, GemvOut::StoreF32, GemvVariant::Auto, true, seed++, nullptr, nullptr, h);
    run_and_check(gpu, wo, {&odd}, 2, GemvOut::StoreF32, GemvVariant::Auto, false, seed++, nullptr, nullptr, h);
    run_and_check(gpu, wd, {&down}, 8, GemvOut::AddF32, GemvVariant::Auto, false, seed++, nullptr, nullptr, h);
    const QTensor gate = random_qtensor(f, 14336, 4096, 0, seed++, "w1"), up = random_qtensor(f, 14336, 4096, 0, seed++, "w3");
    const GpuWeight w13 = upload(concat_glu(repack_for_gpu(gate), repack_for_gpu(up)), gpu.s);
    run_and_check(gpu, w13, {&gate, &up}, 5, GemvOut::SwiGluF32, GemvVariant::Auto, true, seed++, nullptr, nullptr, h);
  }
  {
    const QTensor t = random_qtensor(Format::INT8, 64, 256, 0, seed++, "w");
    const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
    GemvEpilogue ep;
    EXPECT_FALSE(gemm_parts(h, w, nullptr, 4, ep, nullptr, nullptr, gpu.s)) << "int8: not a plain format";
    const QTensor b = random_qtensor(Format::BF16, 64, 256, 0, seed++, "w");
    const GpuWeight wb = upload(repack_for_gpu(b), gpu.s);
    EXPECT_FALSE(gemm_parts(h, wb, nullptr, 1, ep, nullptr, nullptr, gpu.s)) << "one token: the GEMV's";
  }
  cublasDestroy(h);
}

TEST(CudaGemv, LmHeadShape) {
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 3000;
  for (Format f : {Format::BF16, Format::INT8, Format::INT4, Format::FP8_E4M3, Format::MXFP4, Format::NVFP4}) {
    const QTensor t = random_qtensor(f, 128256, 4096, 0, seed++, "output");
    const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
    run_and_check(gpu, w, {&t}, 1, GemvOut::StoreF32, GemvVariant::Auto, true, seed++);
  }
}

TEST(CudaGemv, EveryEpilogue) {
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 4000;
  for (Format f : {Format::BF16, Format::F32, Format::INT4, Format::NVFP4, Format::FP8_E4M3_T, Format::TERNARY_P5,
                   Format::MXFP6_E2M3}) {
    SCOPED_TRACE(format_name(f));
    const QTensor t = quantized(f, 45, 320, seed++);
    const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
    const GluPair glu = glu_pair(f, 21, 320, &seed, gpu.s);
    for (int M : {1, 5}) {
      for (GemvVariant v : {GemvVariant::Split8, GemvVariant::Tiles8x1, GemvVariant::Reference}) {
        for (GemvOut kind : {GemvOut::StoreF32, GemvOut::StoreBF16, GemvOut::AddF32})
          run_and_check(gpu, w, {&t}, M, kind, v, true, seed++);
        for (GemvOut kind : {GemvOut::SwiGluF32, GemvOut::SwiGluBF16})
          run_and_check(gpu, glu.w, {&glu.gate, &glu.up}, M, kind, v, M == 5, seed++);
      }
    }
  }
}

TEST(CudaGemv, SameResultEveryRun) {
  // no races: the same input gives the same bits on every launch and in every variant family member
  REQUIRE_GPU();
  Gpu gpu;
  const QTensor t = quantized(Format::INT4, 300, 4096, 77);
  const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
  const std::vector<float> x = gaussian(3 * 4096, 78);
  Dev<float> dx(x), dy(size_t(3 * 300));
  GemvEpilogue ep;
  ep.out = dy.p;
  std::vector<float> first;
  for (int rep = 0; rep < 5; ++rep) {
    gemv(w, dx.p, 3, ep, gpu.s, GemvVariant::Split8);
    LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
    const std::vector<float> y = dy.download();
    if (rep == 0) first = y;
    else EXPECT_EQ(std::memcmp(y.data(), first.data(), 4 * y.size()), 0) << "run " << rep << " differs";
  }
}

TEST(CudaGemv, BadArgumentsAreErrors) {
  REQUIRE_GPU();
  Gpu gpu;
  const QTensor t = quantized(Format::INT4, 16, 128, 5);
  const GpuWeight w = upload(repack_for_gpu(t), gpu.s);
  Dev<float> dx(size_t(9 * 128)), dy(size_t(9 * 16));
  GemvEpilogue ep;
  ep.out = dy.p;
  EXPECT_THROW(gemv(w, dx.p, 0, ep, gpu.s), Error);
  EXPECT_THROW(gemv(w, dx.p, 9, ep, gpu.s), Error);
  ep.kind = GemvOut::SwiGluF32;
  EXPECT_THROW(gemv(w, dx.p, 1, ep, gpu.s), Error);  // not a gate/up pair
  ep.kind = GemvOut::StoreF32;
  ep.ld = 8;
  EXPECT_THROW(gemv(w, dx.p, 1, ep, gpu.s), Error);  // output rows overlap
}

TEST(CudaDequant, BitExactEveryFormat) {
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 5000;
  for (Format f : weight_formats()) {
    SCOPED_TRACE(format_name(f));
    const QTensor a = quantized(f, 37, 576, seed++), b = random_qtensor(f, 21, 576, 0, seed++, "b");
    const QTensor gate = quantized(f, 13, 576, seed++), up = random_qtensor(f, 13, 576, 0, seed++, "up");
    const GpuWeightHost ha = repack_for_gpu(a), hb = repack_for_gpu(b);
    struct Case {
      GpuWeightHost h;
      std::vector<const QTensor*> parts;
    };
    std::vector<Case> cases;
    cases.push_back({concat_rows({&ha, &hb}), {&a, &b}});
    cases.push_back({concat_glu(repack_for_gpu(gate), repack_for_gpu(up)), {&gate, &up}});
    for (const Case& c : cases) {
      const GpuWeight w = upload(c.h, gpu.s);
      const int64_t rows = w.logical_rows(), K = w.view.cols;
      Dev<uint16_t> out(size_t(rows * K));
      LB_CUDA_CHECK(cudaMemset(out.p, 0xff, out.n * 2));  // poison: bf16 NaN everywhere
      dequantize_to_bf16(w, reinterpret_cast<__nv_bfloat16*>(out.p), gpu.s);
      LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
      const std::vector<uint16_t> got = out.download();
      std::vector<float> row(static_cast<size_t>(K));
      int64_t r0 = 0, bad = 0;
      for (const QTensor* p : c.parts) {
        for (int64_t r = 0; r < p->rows; ++r) {
          dequantize_row(*p, r, row.data());
          for (int64_t k = 0; k < K; ++k) {
            const uint16_t want = f32_to_bf16(row[size_t(k)]), g = got[size_t((r0 + r) * K + k)];
            const bool nan_both = std::isnan(row[size_t(k)]) && std::isnan(bf16_to_f32(g));
            if (g != want && !nan_both && bad++ < 5)
              ADD_FAILURE() << "row " << r0 + r << " col " << k << ": GPU bf16 0x" << std::hex << g << ", CPU 0x" << want
                            << std::dec << " (" << row[size_t(k)] << ")";
          }
        }
        r0 += p->rows;
      }
    }
  }
}

TEST(CudaGemm, Bf16MatchesFp64) {
  REQUIRE_GPU();
  Gpu gpu;
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  for (auto [M, N, K] : {std::tuple<int, int, int>{13, 300, 576}, {64, 1024, 4096}, {9, 37, 172}}) {
    std::vector<uint16_t> X(size_t(M) * K), W(size_t(N) * K);
    Rng rng(uint64_t(M * N + K));
    for (auto& v : X) v = f32_to_bf16(rng.normal());
    for (auto& v : W) v = f32_to_bf16(0.05f * rng.normal());
    Dev<uint16_t> dX(X), dW(W);
    Dev<float> dC(size_t(M) * N);
    LB_CUDA_CHECK(cudaMemset(dC.p, 0xff, dC.n * 4));
    gemm_bf16(h, reinterpret_cast<const __nv_bfloat16*>(dX.p), reinterpret_cast<const __nv_bfloat16*>(dW.p), dC.p, M, N,
              K, gpu.s);
    LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
    const std::vector<float> C = dC.download();
    int bad = 0;
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double y = 0, S = 0;
        for (int k = 0; k < K; ++k) {
          const double p = double(bf16_to_f32(X[size_t(m) * K + k])) * bf16_to_f32(W[size_t(n) * K + k]);
          y += p;
          S += std::fabs(p);
        }
        // bf16 products are exact in fp32; fp32 accumulation: K 2^-23 S (truncating units included)
        const double b = (K + 16) * std::ldexp(S, -23) + 1e-30;
        if (!(std::fabs(C[size_t(m) * N + n] - y) <= b) && bad++ < 5)
          ADD_FAILURE() << "gemm " << M << "x" << N << "x" << K << " C[" << m << "," << n << "] = " << C[size_t(m) * N + n]
                        << ", reference " << y << ", bound " << b;
      }
  }
  cublasDestroy(h);
}

TEST(CudaLinear, SeamMatchesReference) {
  REQUIRE_GPU();
  Gpu gpu;
  uint64_t seed = 6000;
  for (Format f : {Format::INT4, Format::BF16, Format::MXFP8_E4M3}) {
    SCOPED_TRACE(format_name(f));
    const QTensor q = quantized(f, 64, 256, seed++), k = quantized(f, 16, 256, seed++), v = quantized(f, 16, 256, seed++);
    auto lin = DevLinear::create({&q, &k, &v}, false, gpu.s);
    EXPECT_EQ(lin->rows(), 96);
    EXPECT_EQ(lin->out_features(), 96);
    EXPECT_EQ(lin->in_features(), 256);
    EXPECT_GE(lin->num_variants(), 1);
    const std::vector<float> x = gaussian(2 * 256, seed++);
    const Reference ref = reference({&q, &k, &v}, x, 2, nullptr, 1e-5f);
    Dev<float> dx(x), dy(size_t(2 * 96));
    for (int var = -1; var < lin->num_variants(); ++var) {
      lin->gemv(dx.p, 2, nullptr, 1e-5f, LinearEpilogue::Store, dy.p, gpu.s, var);
      LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
      const std::vector<float> y = dy.download();
      for (int64_t i = 0; i < 2 * 96; ++i)
        EXPECT_LE(std::fabs(y[size_t(i)] - ref.y[size_t(i)]), ref.bound[size_t(i)]) << "variant " << var << " i " << i;
    }
    // the pair: rows() = 2 * hidden, out_features() = hidden
    const QTensor g = quantized(f, 24, 256, seed++), u = quantized(f, 24, 256, seed++);
    auto pair = DevLinear::create({&g, &u}, true, gpu.s);
    EXPECT_EQ(pair->rows(), 48);
    EXPECT_EQ(pair->out_features(), 24);
    Dev<uint16_t> deq(size_t(48 * 256));
    pair->dequant_bf16(reinterpret_cast<__nv_bfloat16*>(deq.p), gpu.s);
    LB_CUDA_CHECK(cudaStreamSynchronize(gpu.s));
    const std::vector<uint16_t> d = deq.download();
    std::vector<float> row(256);
    dequantize_row(u, 5, row.data());
    for (int kk = 0; kk < 256; ++kk) EXPECT_EQ(d[size_t((24 + 5) * 256 + kk)], f32_to_bf16(row[size_t(kk)]));
  }
}

}  // namespace
}  // namespace lowbit::cuda

// CPU quantized linear: the fast kernels (qlinear) against the spec (qlinear_ref) for every weight format
// and the activation x weight pairs, on odd shapes. Tolerance from fp32 accumulation: both sides sum K
// products with relative error <= (K + 16) * 2^-24 each (the 16 covers the few per-term roundings of
// scales and decodes), so |y - y_ref| <= 2 * (K + 16) * 2^-24 * sum_k |x'_k| * a_k, where a_k = |w'_k|, or
// |s * q| + |m| for group-affine weights (their kernels may sum s*q and m separately).
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/decode_simd.h"
#include "backend/cpu/qlinear.h"
#include "backend/cpu/qlinear_kernels.h"
#include "formats/codec.h"
#include "formats/qtensor.h"
#include "formats_test_util.h"
#include "util/error.h"
#include "util/half.h"

namespace lowbit {
namespace {

using test::gaussian;

// |s * q| + |m| per element for group-affine weights, |w'| otherwise.
std::vector<double> weight_magnitudes(const QTensor& W) {
  const std::vector<float> wd = dequantize(W);
  std::vector<double> a(wd.size());
  for (size_t i = 0; i < wd.size(); ++i) a[i] = std::fabs(double(wd[i]));
  if (W.info().scheme == ScaleScheme::GroupAffine) {
    for (int64_t n = 0; n < W.rows; ++n) {
      for (int64_t k = 0; k < W.cols; ++k) {
        const int64_t gi = n * W.nscales_per_row() + k / W.group;
        const double s = bf16_to_f32(W.scales.as<uint16_t>()[gi]), m = bf16_to_f32(W.offsets.as<uint16_t>()[gi]);
        a[size_t(n * W.cols + k)] = std::fabs(s * get_code(W.row_codes(n), W.info().elem, k)) + std::fabs(m);
      }
    }
  }
  return a;
}

void check_pair(std::optional<Format> act, Format wf, int64_t M, int64_t K, int64_t N, int group, uint64_t seed) {
  std::vector<float> x = gaussian(size_t(M * K), seed);
  x[0] = 9.0f;  // an activation outlier
  const std::vector<float> w = gaussian(size_t(N * K), seed + 1, 0.05f);
  const QTensor W = quantize(w.data(), N, K, wf, QuantOptions{.group = group}, "w");
  std::vector<float> y(static_cast<size_t>(M * N)), yr(size_t(M * N));
  qlinear(x.data(), M, W, act, y.data());
  qlinear_ref(x.data(), M, W, act, yr.data());

  std::vector<float> xd = x;
  if (act) {
    const std::vector<QTensor> q = quantize_per_token(x.data(), M, K, *act);
    for (int64_t m = 0; m < M; ++m) dequantize_row(q[size_t(m)], 0, xd.data() + m * K);
  }
  const std::vector<double> a = weight_magnitudes(W);
  const std::vector<float> wd = dequantize(W);
  const std::string what = std::string(act ? format_name(*act) : "f32") + " x " + format_name(wf) + " M" +
                           std::to_string(M) + " K" + std::to_string(K) + " N" + std::to_string(N) + " g" +
                           std::to_string(W.group) + " (" + cpu::qkernel_name(cpu::select_qkernel(act, wf)) + ")";
  int failures = 0;
  for (int64_t m = 0; m < M && failures < 3; ++m) {
    for (int64_t n = 0; n < N && failures < 3; ++n) {
      double mag = 0.0, exact = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        mag += std::fabs(double(xd[size_t(m * K + k)])) * a[size_t(n * K + k)];
        exact += double(xd[size_t(m * K + k)]) * double(wd[size_t(n * K + k)]);
      }
      const double tol = 2.0 * double(K + 16) * std::ldexp(1.0, -24) * mag + double(K) * std::ldexp(1.0, -140);
      const double fast = y[size_t(m * N + n)], ref = yr[size_t(m * N + n)];
      if (!(std::fabs(fast - ref) <= tol) || !(std::fabs(ref - exact) <= tol)) {
        ++failures;
        ADD_FAILURE() << what << " [" << m << "," << n << "]: fast " << fast << " ref " << ref << " exact " << exact
                      << " tol " << tol;
      }
    }
  }
}

TEST(FormatsQlinear, WeightOnlyEveryFormatOddShapes) {
  uint64_t seed = 1000;
  for (const FormatInfo& fi : all_formats()) {
    if (!fi.weight_ok) continue;
    for (int64_t M : {1, 3, 17})
      for (int64_t K : {32, 96, 160, 4096}) check_pair(std::nullopt, fi.id, M, K, K == 4096 ? 5 : 7, 0, seed++);
    if (fi.scheme == ScaleScheme::GroupAffine) check_pair(std::nullopt, fi.id, 3, 160, 7, 32, seed++);
  }
}

struct Pair {
  Format act, weight;
  cpu::QKernel kernel;
};

TEST(FormatsQlinear, QuantizedActivationPairsOddShapes) {
  using cpu::QKernel;
  const Pair pairs[] = {
      {Format::INT8, Format::INT8, QKernel::Int8xInt8},                // A8W8 int8
      {Format::FP8_E4M3, Format::FP8_E4M3, QKernel::RowScaled},         // A8W8 fp8, per-row weights
      {Format::FP8_E4M3, Format::FP8_E4M3_T, QKernel::RowScaled},       //   per-tensor weights
      {Format::FP8_E4M3, Format::FP8_E5M2, QKernel::RowScaled},
      {Format::FP8_E5M2, Format::FP8_E4M3, QKernel::RowScaled},
      {Format::INT8, Format::FP8_E4M3, QKernel::RowScaled},
      {Format::INT8, Format::TERNARY, QKernel::RowScaled},              // A8W1.58
      {Format::INT8, Format::TERNARY_P5, QKernel::RowScaled},
      {Format::MXFP8_E4M3, Format::MXFP8_E4M3, QKernel::BlockScaled},
      {Format::MXFP8_E5M2, Format::MXFP8_E5M2, QKernel::BlockScaled},
      {Format::MXFP4, Format::MXFP4, QKernel::BlockScaled},
      {Format::MXFP8_E4M3, Format::MXFP4, QKernel::BlockScaled},
      {Format::NVFP4, Format::NVFP4, QKernel::BlockScaled},
      {Format::MXINT8, Format::MXINT8, QKernel::BlockScaled},
      {Format::INT8, Format::INT4, QKernel::Int8xGroup},                // A8W4
      {Format::INT8, Format::INT4_HQQ, QKernel::Int8xGroup},
      {Format::INT8, Format::INT2, QKernel::Int8xGroup},
      {Format::INT8, Format::INT1_HQQ, QKernel::Int8xGroup},
      {Format::NVFP4, Format::MXFP4, QKernel::DequantAct},
      {Format::MXFP4, Format::INT4, QKernel::DequantAct},
      {Format::BF16, Format::INT8, QKernel::DequantAct},
  };
  uint64_t seed = 5000;
  for (const Pair& p : pairs) {
    EXPECT_EQ(cpu::select_qkernel(p.act, p.weight), p.kernel) << format_name(p.act) << " x " << format_name(p.weight);
    for (int64_t M : {1, 3, 17})
      for (int64_t K : {32, 96, 160, 4096}) check_pair(p.act, p.weight, M, K, K == 4096 ? 5 : 7, 0, seed++);
  }
  check_pair(Format::INT8, Format::INT4, 3, 160, 7, 32, seed++);  // a partial last group (160 = 128 + 32)
  check_pair(Format::INT8, Format::INT2, 3, 160, 7, 96, seed++);
}

TEST(FormatsQlinear, EveryActivationFormatTimesEveryWeightFormat) {
  uint64_t seed = 9000;
  for (const FormatInfo& a : all_formats()) {
    if (!a.act_ok) continue;
    for (const FormatInfo& w : all_formats())
      if (w.weight_ok) check_pair(a.id, w.id, 3, 96, 5, 0, seed++);
  }
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

TEST(FormatsQlinear, SimdDecodeMatchesTheReferenceBitForBit) {
  // every code of every element type (fp8 NaN/Inf codes included) through both decoders
  for (const FormatInfo& fi : all_formats()) {
    if (fi.scheme == ScaleScheme::None) continue;
    const int64_t cols = 640 + 200;  // a whole chunk and a partial one with a ragged tail
    const std::vector<float> x = gaussian(size_t(3 * cols), 77);
    QTensor t = quantize(x.data(), 3, cols, fi.id);
    std::vector<uint8_t> codes(t.codes.data, t.codes.data + t.codes.size);
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t(i * 37 + i / 256);  // all byte values
    if (fi.elem == ElemType::T5)
      for (auto& c : codes) c = uint8_t(c % 243);
    t.codes = Buffer::own(codes);
    const size_t ncols = static_cast<size_t>(cols);
    std::vector<float> ref(ncols), fast(ncols), ref_e(ncols), fast_e(ncols);
    for (int64_t r = 0; r < 3; ++r) {
      decode_row_range(t, r, 0, cols, ref.data());
      decode_elems(fi.elem, t.row_codes(r), 0, cols, ref_e.data());
      for (int64_t k0 = 0; k0 < cols; k0 += 640) {
        const int64_t k1 = std::min(cols, k0 + 640);
        cpu::decode_chunk(t, r, k0, k1, true, fast.data() + k0);
        cpu::decode_chunk(t, r, k0, k1, false, fast_e.data() + k0);
      }
      for (int64_t k = 0; k < cols; ++k) {
        ASSERT_TRUE(same_bits(ref[size_t(k)], fast[size_t(k)]) || (std::isnan(ref[size_t(k)]) && std::isnan(fast[size_t(k)])))
            << fi.name << " [" << r << "," << k << "] " << ref[size_t(k)] << " vs " << fast[size_t(k)];
        ASSERT_TRUE(same_bits(ref_e[size_t(k)], fast_e[size_t(k)]) ||
                    (std::isnan(ref_e[size_t(k)]) && std::isnan(fast_e[size_t(k)])))
            << fi.name << " elements [" << r << "," << k << "]";
      }
    }
  }
}

TEST(FormatsQlinear, Errors) {
  const std::vector<float> w(64, 0.5f), x(32, 1.0f);
  const QTensor W = quantize(w.data(), 2, 32, Format::INT4, QuantOptions{.group = 32}, "blk.0.ffn_up.weight");
  std::vector<float> y(2);
  EXPECT_THROW(qlinear(x.data(), 1, W, Format::INT4, y.data()), Error);  // int4 is not an activation format
  EXPECT_THROW(qlinear(x.data(), -1, W, std::nullopt, y.data()), Error);
  QTensor broken = W;
  broken.codes.size = 3;
  try {
    qlinear(x.data(), 1, broken, std::nullopt, y.data());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.ffn_up.weight"), std::string::npos) << e.what();
  }
  qlinear(x.data(), 0, W, Format::INT8, y.data());  // M = 0: nothing to do
}

}  // namespace
}  // namespace lowbit

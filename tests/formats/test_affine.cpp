// torchao-named affine primitives: choose_qparams_affine / quantize_affine / dequantize_affine, with
// expected values worked out by hand from torchao's definitions.
#include <cfloat>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "formats/affine.h"
#include "formats/codec.h"
#include "formats/qtensor.h"
#include "formats_test_util.h"
#include "lowbit/quant.h"
#include "util/error.h"
#include "util/half.h"

namespace lowbit {
namespace {

TEST(FormatsAffine, SymmetricInt8FullRangeDividesBy127p5) {
  // torchao SYMMETRIC with [-128, 127]: s = amax / 127.5, zero point int(0 / 2) = 0
  AffineSpec spec;  // symmetric, per row, int8, Int domain
  const float x[3] = {1.0f, -2.0f, 0.5f};
  const AffineQParams qp = choose_qparams_affine(x, 1, 3, spec);
  ASSERT_EQ(qp.blocks.size(), 1u);
  EXPECT_EQ(qp.blocks[0].scale, 2.0f / 127.5f);
  EXPECT_EQ(qp.blocks[0].zero_point, 0.0f);
  const std::vector<int32_t> q = quantize_affine(x, 1, 3, qp, spec);
  EXPECT_EQ(q[0], 64);    // 63.75
  // torchao multiplies by the fp32 reciprocal: 1/s = 63.749996, so -2 maps to -127.49999 -> -127
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[2], 32);  // 31.874998
  const std::vector<float> d = dequantize_affine(q.data(), 1, 3, qp, spec);
  EXPECT_EQ(d[1], -127.0f * (2.0f / 127.5f));
}

TEST(FormatsAffine, SymmetricRestrictedRangeDividesBy127) {
  AffineSpec spec;
  spec.quant_min = -127;
  spec.quant_max = 127;
  const float x[2] = {-127.0f, 3.0f};
  const AffineQParams qp = choose_qparams_affine(x, 1, 2, spec);
  EXPECT_EQ(qp.blocks[0].scale, 1.0f);
  EXPECT_EQ(qp.blocks[0].zero_point, 0.0f);  // int((127 - 127 + 1) / 2) = int(0.5) = 0
  // uint4 symmetric: zero point int(16 / 2) = 8
  spec.quant_min = 0;
  spec.quant_max = 15;
  EXPECT_EQ(choose_qparams_affine_block(-1.0f, 2.0f, spec).zero_point, 8.0f);
  EXPECT_EQ(choose_qparams_affine_block(-1.0f, 2.0f, spec).scale, 2.0f / 7.5f);
}

TEST(FormatsAffine, AsymmetricIntDomain) {
  AffineSpec spec;
  spec.mapping = MappingType::Asymmetric;
  spec.quant_min = 0;
  spec.quant_max = 255;
  const float x[2] = {-1.0f, 3.0f};
  const AffineQParams qp = choose_qparams_affine(x, 1, 2, spec);
  const float s = 4.0f / 255.0f;
  EXPECT_EQ(qp.blocks[0].scale, s);
  EXPECT_EQ(qp.blocks[0].zero_point, 64.0f);  // 0 - round(-1 / s) = round(63.75)
  const std::vector<int32_t> q = quantize_affine(x, 1, 2, qp, spec);
  EXPECT_EQ(q[0], 0);    // round(-63.75) + 64
  EXPECT_EQ(q[1], 255);  // round(191.25) + 64 = 255
  const std::vector<float> d = dequantize_affine(q.data(), 1, 2, qp, spec);
  EXPECT_EQ(d[0], -64.0f * s);
  EXPECT_EQ(d[1], 191.0f * s);
  // preserve_zero widens an all-positive block to include 0
  const AffineBlockParams p = choose_qparams_affine_block(2.0f, 5.0f, spec);
  EXPECT_EQ(p.scale, 5.0f / 255.0f);
  EXPECT_EQ(p.zero_point, 0.0f);
}

TEST(FormatsAffine, FloatDomainIsTheGroupAffineConvention) {
  AffineSpec spec;
  spec.mapping = MappingType::Asymmetric;
  spec.quant_min = 0;
  spec.quant_max = 15;
  spec.preserve_zero = false;
  spec.domain = ZeroPointDomain::Float;
  spec.scale_dtype = ParamDType::BF16;
  spec.zero_dtype = ParamDType::BF16;
  const AffineBlockParams p = choose_qparams_affine_block(1.0f, 4.0f, spec);
  EXPECT_EQ(p.scale, round_bf16(3.0f / 15.0f));
  EXPECT_EQ(p.zero_point, 1.0f);  // the value of code 0 (raw min, not forced to include zero)
  EXPECT_EQ(quantize_affine_value(4.0f, p, spec), 15);
  EXPECT_EQ(quantize_affine_value(1.0f, p, spec), 0);
  EXPECT_EQ(quantize_affine_value(-5.0f, p, spec), 0);  // clamped
  EXPECT_EQ(dequantize_affine_value(15, p, spec), std::fma(15.0f, p.scale, 1.0f));
}

TEST(FormatsAffine, NoneDomainAndEps) {
  AffineSpec spec;
  spec.domain = ZeroPointDomain::None;
  const float z[4] = {0, 0, 0, 0};
  const AffineQParams qp = choose_qparams_affine(z, 2, 2, spec);
  EXPECT_EQ(qp.blocks[0].scale, spec.eps);  // clamped from 0
  EXPECT_EQ(quantize_affine(z, 2, 2, qp, spec)[3], 0);
  spec.eps = 0.5f;
  const float x[2] = {1.0f, -1.0f};
  EXPECT_EQ(choose_qparams_affine(x, 1, 2, spec).blocks[0].scale, 0.5f);  // 1/127.5 < eps
}

TEST(FormatsAffine, BlocksTileTheTensorWithPartialEdges) {
  // [3, 6] with blocks (2, 4): block rows {0,1},{2}; block cols {0..3},{4,5}
  const float x[18] = {1, 2, 3, 4, 50, 6,     //
                       -8, 2, 3, 4, 5, 6,     //
                       1, 1, 1, 1, -100, 7};
  AffineSpec spec;
  spec.mapping = MappingType::Symmetric;
  spec.block_rows = 2;
  spec.block_cols = 4;
  const AffineQParams qp = choose_qparams_affine(x, 3, 6, spec);
  ASSERT_EQ(qp.nblock_rows, 2);
  ASSERT_EQ(qp.nblock_cols, 2);
  EXPECT_EQ(qp.at(0, 0).scale, 8.0f / 127.5f);
  EXPECT_EQ(qp.at(0, 1).scale, 50.0f / 127.5f);
  EXPECT_EQ(qp.at(1, 0).scale, 1.0f / 127.5f);
  EXPECT_EQ(qp.at(1, 1).scale, 100.0f / 127.5f);
  // per tensor: block 0 x 0 means whole dimensions
  spec.block_rows = 0;
  spec.block_cols = 0;
  EXPECT_EQ(choose_qparams_affine(x, 3, 6, spec).blocks.size(), 1u);
}

TEST(FormatsAffine, SpecAndInputErrors) {
  const float x[2] = {1.0f, NAN};
  AffineSpec spec;
  EXPECT_THROW(choose_qparams_affine(x, 1, 2, spec), Error);
  AffineSpec sym_float;
  sym_float.domain = ZeroPointDomain::Float;
  EXPECT_THROW(validate_affine_spec(sym_float), Error);
  AffineSpec sym_nozero;
  sym_nozero.preserve_zero = false;
  EXPECT_THROW(validate_affine_spec(sym_nozero), Error);
  AffineSpec inverted;
  inverted.quant_min = 5;
  inverted.quant_max = 5;
  EXPECT_THROW(validate_affine_spec(inverted), Error);
  const float ok[2] = {1.0f, 2.0f};
  const AffineQParams qp = choose_qparams_affine(ok, 1, 2, spec);
  EXPECT_THROW(quantize_affine(ok, 2, 1, qp, AffineSpec{.block_rows = 1, .block_cols = 1}), Error);
  const int32_t bad_code[2] = {300, 0};
  EXPECT_THROW(dequantize_affine(bad_code, 1, 2, qp, spec), Error);
}

TEST(FormatsAffine, IntFormatsAreThePrimitives) {
  // int4 g64 == choose/quantize_affine(ASYMMETRIC, FLOAT domain, bf16 params, eps FLT_MIN, no preserve_zero)
  const int64_t rows = 3, cols = 200;
  const std::vector<float> x = test::gaussian(size_t(rows * cols), 31);
  for (auto [f, bits] : {std::pair{Format::INT4, 4}, std::pair{Format::INT2, 2}, std::pair{Format::INT1, 1}}) {
    AffineSpec spec;
    spec.mapping = MappingType::Asymmetric;
    spec.block_cols = 64;
    spec.quant_min = 0;
    spec.quant_max = (1 << bits) - 1;
    spec.eps = FLT_MIN;
    spec.scale_dtype = spec.zero_dtype = ParamDType::BF16;
    spec.preserve_zero = false;
    spec.domain = ZeroPointDomain::Float;
    const AffineQParams qp = choose_qparams_affine(x.data(), rows, cols, spec);
    const std::vector<int32_t> q = quantize_affine(x.data(), rows, cols, qp, spec);
    const std::vector<float> d = dequantize_affine(q.data(), rows, cols, qp, spec);
    const QTensor t = quantize(x.data(), rows, cols, f, QuantOptions{.group = 64});
    const std::vector<float> dt = dequantize(t);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        EXPECT_EQ(int32_t(get_code(t.row_codes(r), t.info().elem, j)), q[size_t(r * cols + j)]);
        EXPECT_EQ(dt[size_t(r * cols + j)], d[size_t(r * cols + j)]);
      }
    }
  }
}

}  // namespace
}  // namespace lowbit

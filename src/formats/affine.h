// Integer affine quantization primitives named after torchao's quant_primitives: choose_qparams_affine,
// quantize_affine, dequantize_affine (docs/formats.md "Integer affine"). They work on a row-major
// x[rows, cols] tiled by rectangular blocks that share one (scale, zero point); a partial last block is
// allowed in both dimensions (torchao asserts divisibility instead).
//
// Semantics follow torchao exactly, with one deliberate difference: in the FLOAT zero-point domain the
// zero point is the value of code quant_min (x' = (q - quant_min) * s + zp, the lowbit group-affine
// convention), where torchao's tinygemm convention stores the value of the mid code
// (zp_torchao = zp + s * ((quant_max + quant_min + 1) / 2 - quant_min)).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit {

enum class MappingType : uint8_t {
  Symmetric,   // s = max(-min_neg, max_pos) / ((quant_max - quant_min) / 2); zero point is the mid code
  Asymmetric,  // s = (max_pos - min_neg) / (quant_max - quant_min)
};

enum class ZeroPointDomain : uint8_t {
  None,   // no zero point: q = clamp(rne(x * (1/s))), x' = q * s
  Int,    // integer zp: q = clamp(rne(x * (1/s)) + zp), x' = (q - zp) * s
  Float,  // float zp (value of code quant_min): q = clamp(rne((x - zp) / s) + qmin), x' = fma(q - qmin, s, zp)
};

// The precision a scale or float zero point is stored in (values are rounded to it, RNE).
enum class ParamDType : uint8_t { F32, BF16, F16 };

struct AffineSpec {
  MappingType mapping = MappingType::Symmetric;
  int64_t block_rows = 1;  // rows sharing one (scale, zero point); 0 = all rows
  int64_t block_cols = 0;  // columns sharing one (scale, zero point); 0 = all columns
  int32_t quant_min = -128, quant_max = 127;
  float eps = 1.1920928955078125e-07f;  // minimum scale; torchao's default torch.finfo(float32).eps
  ParamDType scale_dtype = ParamDType::F32;
  ParamDType zero_dtype = ParamDType::F32;  // Float domain only (Int zero points are integers)
  // true: the range is widened to include 0 (min_neg = min(min, 0), max_pos = max(max, 0)).
  bool preserve_zero = true;
  ZeroPointDomain domain = ZeroPointDomain::Int;
};

// Throws Error for impossible specs (quant_min >= quant_max, symmetric without preserve_zero,
// symmetric in the Float domain, negative block sizes, eps < 0).
void validate_affine_spec(const AffineSpec& spec);

struct AffineBlockParams {
  float scale = 1.0f;       // rounded to spec.scale_dtype
  float zero_point = 0.0f;  // Int: an integer in [quant_min, quant_max]; Float: rounded to zero_dtype; None: 0
};

// Per-block primitives (no allocation); min_val/max_val are the block's raw minimum and maximum.
AffineBlockParams choose_qparams_affine_block(float min_val, float max_val, const AffineSpec& spec);
// x and the parameters must be finite (a NaN result maps to the zero point's code, never to UB).
int32_t quantize_affine_value(float x, const AffineBlockParams& p, const AffineSpec& spec);
float dequantize_affine_value(int32_t q, const AffineBlockParams& p, const AffineSpec& spec);

struct AffineQParams {
  int64_t nblock_rows = 0, nblock_cols = 0;
  std::vector<AffineBlockParams> blocks;  // [nblock_rows, nblock_cols]
  const AffineBlockParams& at(int64_t r, int64_t c) const { return blocks[size_t(r * nblock_cols + c)]; }
};

// Whole-tensor forms. Throw Error for bad specs, empty shapes or non-finite inputs.
AffineQParams choose_qparams_affine(const float* x, int64_t rows, int64_t cols, const AffineSpec& spec);
std::vector<int32_t> quantize_affine(const float* x, int64_t rows, int64_t cols, const AffineQParams& qp,
                                     const AffineSpec& spec);
std::vector<float> dequantize_affine(const int32_t* q, int64_t rows, int64_t cols, const AffineQParams& qp,
                                     const AffineSpec& spec);

// Rounds v to a stored parameter precision (RNE).
float round_to(ParamDType t, float v);

}  // namespace lowbit

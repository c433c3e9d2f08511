// The one registry of number formats. Every format is declared once in LOWBIT_FORMATS; the enum, names,
// CLI parsing, dispatch, tests and bench rows all expand from it. Definitions: docs/formats.md.
//
// Canonical packed layout (the CPU reference; GPU layouts are repacks of it):
//   a tensor W[rows, cols] (rows = output channels N, cols = reduction dim K) is stored row by row;
//   blocks/groups run along cols; a row's codes are row_code_bytes(fmt, cols) bytes, rows back to back.
//   sub-byte codes: element j of a row sits at bits (j % epb) * bits of byte j / epb, low bits first
//   (4-bit: element 2i in the low nibble, 2i+1 in the high nibble). 6-bit: elements 4i..4i+3 fill the
//   24-bit little-endian word of bytes 3i..3i+2, element 4i+t at bits 6t. Ternary-1.6: 5 trits per byte,
//   byte = sum_t (q_t + 1) * 3^t. A partial last group/block covers the remaining columns.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

// How the elements are encoded.
enum class ElemType : uint8_t {
  F32, BF16, F16,           // plain floats
  E4M3, E5M2,               // fp8 (OCP E4M3 "fn": no Inf; E5M2: IEEE-like)
  E3M2, E2M3,               // fp6 (no Inf/NaN)
  E2M1,                     // fp4 (no Inf/NaN)
  I8,                       // int8, two's complement
  U4, U2, U1,               // unsigned integer codes of group-affine formats
  T2, T5,                   // ternary {-1,0,1}: 2-bit code q+1, or 5 trits per byte
  MXI8,                     // MXINT8 element: int8 k meaning k/64
};

// How the scales are stored.
enum class ScaleScheme : uint8_t {
  None,           // values stored directly (f32, bf16, fp16)
  RowF32,         // one fp32 scale per row (output channel / token): x = elem * s[row]
  TensorF32,      // one fp32 scale for the whole tensor: x = elem * s
  GroupAffine,    // per group: bf16 scale and bf16 offset: x = q * s + m (torchao FLOAT zero-point domain)
  BlockE8M0,      // MX: one E8M0 power-of-two scale per block of 32
  BlockE4M3F32,   // NVFP4: one E4M3 scale per block of 16 plus one fp32 per tensor
};

// How the quantizer chooses codes (the decode is fixed by ElemType + ScaleScheme).
enum class Method : uint8_t { None, AbsMax, MinMax, Hqq, AbsMean, Mx, NvFp4 };

//  X(ID,        name,            elem, scheme,        block, default_group, method, weight, act, summary)
// block: fixed block size (MX 32, NVFP4 16); default_group: group size of group-wise formats (--group).
// The *-static formats are activation-only: one per-tensor scale from a calibrated range
// (QuantOptions::static_amax, recorded by `lowbit calibrate`) instead of each token's own range.
#define LOWBIT_FORMATS(X)                                                                                     \
  X(F32,        "f32",             F32,  None,         0,  0,   None,    true, true,  "fp32 reference")     \
  X(BF16,       "bf16",            BF16, None,         0,  0,   None,    true, true,  "bfloat16")           \
  X(F16,        "fp16",            F16,  None,         0,  0,   None,    true, true,  "IEEE half")          \
  X(FP8_E4M3,   "fp8-e4m3",        E4M3, RowF32,       0,  0,   AbsMax,  true, true,  "fp8 E4M3, per-row scale") \
  X(FP8_E5M2,   "fp8-e5m2",        E5M2, RowF32,       0,  0,   AbsMax,  true, true,  "fp8 E5M2, per-row scale") \
  X(FP8_E4M3_T, "fp8-e4m3-tensor", E4M3, TensorF32,    0,  0,   AbsMax,  true, false, "fp8 E4M3, per-tensor scale") \
  X(FP8_E5M2_T, "fp8-e5m2-tensor", E5M2, TensorF32,    0,  0,   AbsMax,  true, false, "fp8 E5M2, per-tensor scale") \
  X(INT8,       "int8",            I8,   RowF32,       0,  0,   AbsMax,  true, true,  "int8 symmetric absmax/127 per row") \
  X(INT4,       "int4",            U4,   GroupAffine,  0,  128, MinMax,  true, false, "uint4 asymmetric groups (RTN)") \
  X(INT2,       "int2",            U2,   GroupAffine,  0,  64,  MinMax,  true, false, "uint2 asymmetric groups (RTN)") \
  X(INT1,       "int1",            U1,   GroupAffine,  0,  64,  MinMax,  true, false, "uint1 asymmetric groups (RTN)") \
  X(INT4_HQQ,   "int4-hqq",        U4,   GroupAffine,  0,  128, Hqq,     true, false, "uint4 groups, HQQ zeros") \
  X(INT2_HQQ,   "int2-hqq",        U2,   GroupAffine,  0,  64,  Hqq,     true, false, "uint2 groups, HQQ zeros") \
  X(INT1_HQQ,   "int1-hqq",        U1,   GroupAffine,  0,  64,  Hqq,     true, false, "uint1 groups, HQQ zeros") \
  X(TERNARY,    "ternary",         T2,   TensorF32,    0,  0,   AbsMean, true, false, "b1.58 absmean, 2-bit packing") \
  X(TERNARY_P5, "ternary-1.6",     T5,   TensorF32,    0,  0,   AbsMean, true, false, "b1.58 absmean, 5 trits/byte") \
  X(FP6_E3M2,   "fp6-e3m2",        E3M2, RowF32,       0,  0,   AbsMax,  true, false, "fp6 E3M2, per-row scale") \
  X(FP6_E2M3,   "fp6-e2m3",        E2M3, RowF32,       0,  0,   AbsMax,  true, false, "fp6 E2M3, per-row scale") \
  X(MXFP8_E4M3, "mxfp8-e4m3",      E4M3, BlockE8M0,    32, 0,   Mx,      true, true,  "OCP MXFP8 E4M3") \
  X(MXFP8_E5M2, "mxfp8-e5m2",      E5M2, BlockE8M0,    32, 0,   Mx,      true, true,  "OCP MXFP8 E5M2") \
  X(MXFP6_E3M2, "mxfp6-e3m2",      E3M2, BlockE8M0,    32, 0,   Mx,      true, false, "OCP MXFP6 E3M2") \
  X(MXFP6_E2M3, "mxfp6-e2m3",      E2M3, BlockE8M0,    32, 0,   Mx,      true, false, "OCP MXFP6 E2M3") \
  X(MXFP4,      "mxfp4",           E2M1, BlockE8M0,    32, 0,   Mx,      true, true,  "OCP MXFP4 (E2M1)") \
  X(MXINT8,     "mxint8",          MXI8, BlockE8M0,    32, 0,   Mx,      true, true,  "OCP MXINT8") \
  X(NVFP4,      "nvfp4",           E2M1, BlockE4M3F32, 16, 0,   NvFp4,   true, true,  "NVFP4: E2M1, E4M3 per 16, fp32 per tensor") \
  X(INT8_STATIC, "int8-static",    I8,   TensorF32,    0,  0,   AbsMax,  false, true, "int8 activations, calibrated per-tensor scale") \
  X(FP8_STATIC, "fp8-static",      E4M3, TensorF32,    0,  0,   AbsMax,  false, true, "fp8 E4M3 activations, calibrated per-tensor scale")

enum class Format : uint8_t {
#define LOWBIT_X(id, ...) id,
  LOWBIT_FORMATS(LOWBIT_X)
#undef LOWBIT_X
};

#define LOWBIT_X(...) +1
inline constexpr int kNumFormats = 0 LOWBIT_FORMATS(LOWBIT_X);
#undef LOWBIT_X

struct FormatInfo {
  Format id;
  const char* name;
  ElemType elem;
  ScaleScheme scheme;
  int block;          // fixed block size (0 = none)
  int default_group;  // group size for GroupAffine (0 = not group-wise)
  Method method;
  bool weight_ok;     // usable as a weight format
  bool act_ok;        // usable as a per-token activation format
  const char* summary;
};

const FormatInfo& format_info(Format f);
// Static activation formats (int8-static, fp8-static): activation-only, one calibrated per-tensor scale.
inline bool is_static_act(Format f) { return f == Format::INT8_STATIC || f == Format::FP8_STATIC; }
// The per-row format a static format's tokens equal once the calibrated scale is every row's scale
// (int8-static -> int8, fp8-static -> fp8-e4m3): the kernels of the twin serve the static format.
inline Format static_act_twin(Format f) { return f == Format::INT8_STATIC ? Format::INT8 : Format::FP8_E4M3; }
std::span<const FormatInfo> all_formats();
const char* format_name(Format f);

// Parses a format name (aliases: "mxfp8" = mxfp8-e4m3, "mxfp6" = mxfp6-e3m2, "fp8" = fp8-e4m3,
// "fp6" = fp6-e3m2, "f16" = fp16, "fp32" = f32). nullopt when unknown.
std::optional<Format> parse_format(std::string_view name);
// Same, but throws Error listing the known names; `what` says where the name came from ("--weights").
Format parse_format_or_throw(std::string_view name, std::string_view what);
// A comma-separated list of format names.
std::vector<Format> parse_format_list(std::string_view names, std::string_view what);
// "bf16 fp16 fp8-e4m3 ..." (weight or activation formats), for help texts and errors.
std::string format_names(bool weights = true, bool acts = false);

// Bits of one element code (T5: 8/5 = 1.6 is reported by bits_per_weight; here 2 for T2, 0 for T5).
int elem_bits(ElemType e);
bool is_subbyte(ElemType e);
// Bytes of one row's codes for `cols` elements (canonical packing).
size_t row_code_bytes(Format f, int64_t cols);
// Group/block size actually used along cols for this format and a requested group (0 = default).
int effective_group(Format f, int group);
// Number of scale entries per row (groups/blocks; 1 for RowF32; 0 for None/TensorF32).
int64_t scales_per_row(Format f, int64_t cols, int group);
// Storage bits per weight including scales/zeros/per-tensor scales, for a [rows, cols] tensor.
double bits_per_weight(Format f, int64_t rows, int64_t cols, int group);
// Total bytes of a packed [rows, cols] tensor (codes + scales + zeros + per-tensor scale).
size_t packed_bytes(Format f, int64_t rows, int64_t cols, int group);

// The MX scale rule (docs/formats.md): FLOOR is OCP v1.0 (default), RCEIL is NVIDIA's.
enum class ScaleRule : uint8_t { Floor, RCeil };
std::optional<ScaleRule> parse_scale_rule(std::string_view s);

}  // namespace lowbit

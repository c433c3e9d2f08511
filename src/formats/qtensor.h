// A tensor in any registry format, in the canonical packed layout (see format.h), plus the quantize /
// dequantize entry points. Buffers may own their bytes or point into a memory-mapped file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/format.h"

namespace lowbit {

// A byte range kept alive by `owner` (a std::vector, a MappedFile, ...). Empty when size == 0.
struct Buffer {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> owner;

  static Buffer own(std::vector<uint8_t> bytes);
  static Buffer view(const void* p, size_t n, std::shared_ptr<const void> owner);
  // A zero-filled owned buffer; `mutable_data` may be written by the creator (quantizers, loaders).
  static Buffer zeros(size_t n);
  uint8_t* mutable_data() const { return const_cast<uint8_t*>(data); }
  template <typename T>
  const T* as() const { return reinterpret_cast<const T*>(data); }
};

struct QTensor {
  std::string name;              // tensor name, for error messages ("blk.3.attn_q.weight")
  Format fmt = Format::F32;
  int64_t rows = 0, cols = 0;    // [rows = output channels N, cols = reduction dim K]
  int group = 0;                 // group/block size along cols (0 when the format has none)
  ScaleRule rule = ScaleRule::Floor;  // MX scale rule used when quantizing (decode does not depend on it)
  Buffer codes;                  // rows * row_code_bytes(fmt, cols)
  Buffer scales;                 // RowF32: f32[rows]; GroupAffine: bf16[rows, ngroups]; MX: e8m0[rows, nblocks];
                                 // NVFP4: e4m3[rows, nblocks]
  Buffer offsets;                // GroupAffine: bf16[rows, ngroups] (x = q * s + m)
  float tensor_scale = 1.0f;     // TensorF32: the scale; NVFP4: S_enc (x = e2m1 * S_dec_b / S_enc)

  int64_t numel() const { return rows * cols; }
  const FormatInfo& info() const { return format_info(fmt); }
  size_t row_bytes() const { return row_code_bytes(fmt, cols); }
  const uint8_t* row_codes(int64_t r) const { return codes.data + size_t(r) * row_bytes(); }
  int64_t nscales_per_row() const { return scales_per_row(fmt, cols, group); }
  size_t bytes() const { return codes.size + scales.size + offsets.size + (info().scheme == ScaleScheme::TensorF32 ||
                                                                       info().scheme == ScaleScheme::BlockE4M3F32 ? 4 : 0); }
  // Throws Error naming the tensor when buffer sizes do not match the shape and format.
  void validate() const;
};

// Wraps fp32 values (copied) as an F32 QTensor.
QTensor make_f32(std::string name, int64_t rows, int64_t cols, const float* values);
// Views existing memory holding plain f32/bf16/f16 values (no copy).
QTensor view_plain(std::string name, Format fmt, int64_t rows, int64_t cols, const void* data,
                   std::shared_ptr<const void> owner);

struct QuantOptions {
  int group = 0;                      // 0 = the format's default group; must be a multiple of 32 for groups
  ScaleRule rule = ScaleRule::Floor;  // MX formats
  // HQQ optimizer (docs/formats.md); beta is updated each iteration (paper/torchao behaviour).
  float hqq_p = 0.7f, hqq_beta = 10.0f, hqq_kappa = 1.01f;
  int hqq_iters = 20;
  // Scale search for block formats (issue: quality): try neighbouring block scales, keep the lowest error.
  bool search_scales = false;
};

// Quantizes x[rows, cols] (fp32, row-major) to `fmt`. Throws Error for impossible options.
QTensor quantize(const float* x, int64_t rows, int64_t cols, Format fmt, const QuantOptions& opt = {},
                 std::string name = "");
// Per-token (dynamic) activation quantization of x[M, K]: every row is quantized on its own, as
// quantize(x + m*K, 1, K, fmt, opt). For the row-scaled and block formats this equals quantize(x, M, K);
// for NVFP4 it makes the per-tensor scale S_enc the token row's own (docs/formats.md).
std::vector<QTensor> quantize_per_token(const float* x, int64_t M, int64_t K, Format fmt,
                                        const QuantOptions& opt = {});
// Dequantizes one row (cols values) / the whole tensor (rows*cols values) to fp32.
void dequantize_row(const QTensor& t, int64_t row, float* out);
void dequantize(const QTensor& t, float* out);
std::vector<float> dequantize(const QTensor& t);

}  // namespace lowbit

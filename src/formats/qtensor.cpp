#include "formats/qtensor.h"

#include <cmath>
#include <cstring>

#include "util/error.h"

namespace lowbit {

Buffer Buffer::own(std::vector<uint8_t> bytes) {
  auto holder = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  Buffer b;
  b.data = holder->data();
  b.size = holder->size();
  b.owner = holder;
  return b;
}

Buffer Buffer::view(const void* p, size_t n, std::shared_ptr<const void> owner) {
  Buffer b;
  b.data = static_cast<const uint8_t*>(p);
  b.size = n;
  b.owner = std::move(owner);
  return b;
}

Buffer Buffer::zeros(size_t n) { return own(std::vector<uint8_t>(n, 0)); }

void QTensor::validate() const {
  const FormatInfo& fi = info();
  const std::string who = name.empty() ? std::string("tensor") : "tensor '" + name + "'";
  LB_CHECK(rows > 0 && cols > 0, who, ": empty shape [", rows, ", ", cols, "]");
  const size_t want_codes = row_code_bytes(fmt, cols) * size_t(rows);
  LB_CHECK(codes.size == want_codes, who, " (", fi.name, " [", rows, ", ", cols, "]): codes hold ", codes.size,
           " bytes, expected ", want_codes);
  LB_CHECK(codes.data != nullptr, who, ": no code buffer");
  const size_t ns = size_t(scales_per_row(fmt, cols, group)) * size_t(rows);
  size_t want_scales = 0, want_offsets = 0;
  switch (fi.scheme) {
    case ScaleScheme::None:
    case ScaleScheme::TensorF32: break;
    case ScaleScheme::RowF32: want_scales = 4 * ns; break;
    case ScaleScheme::GroupAffine:
      want_scales = 2 * ns;
      want_offsets = 2 * ns;
      LB_CHECK(group > 0 && group % 32 == 0, who, " (", fi.name, "): group size ", group,
               " is not a positive multiple of 32");
      break;
    case ScaleScheme::BlockE8M0:
    case ScaleScheme::BlockE4M3F32:
      want_scales = ns;
      LB_CHECK(group == fi.block, who, " (", fi.name, "): block size ", group, ", expected ", fi.block);
      // the decode divides by S_enc, which quantization always makes a positive finite number
      LB_CHECK(fi.scheme == ScaleScheme::BlockE8M0 || (std::isfinite(tensor_scale) && tensor_scale > 0.0f), who,
               " (", fi.name, "): per-tensor scale S_enc ", tensor_scale, " is not a positive finite number");
      break;
  }
  LB_CHECK(scales.size == want_scales, who, " (", fi.name, "): scales hold ", scales.size, " bytes, expected ",
           want_scales);
  LB_CHECK(offsets.size == want_offsets, who, " (", fi.name, "): offsets hold ", offsets.size,
           " bytes, expected ", want_offsets);
}

QTensor make_f32(std::string name, int64_t rows, int64_t cols, const float* values) {
  std::vector<uint8_t> bytes(size_t(rows * cols) * 4);
  if (values) std::memcpy(bytes.data(), values, bytes.size());
  QTensor t;
  t.name = std::move(name);
  t.fmt = Format::F32;
  t.rows = rows;
  t.cols = cols;
  t.codes = Buffer::own(std::move(bytes));
  return t;
}

QTensor view_plain(std::string name, Format fmt, int64_t rows, int64_t cols, const void* data,
                   std::shared_ptr<const void> owner) {
  LB_CHECK(format_info(fmt).scheme == ScaleScheme::None, "view_plain: ", format_name(fmt),
           " is not a plain format (tensor '", name, "')");
  QTensor t;
  t.name = std::move(name);
  t.fmt = fmt;
  t.rows = rows;
  t.cols = cols;
  t.codes = Buffer::view(data, row_code_bytes(fmt, cols) * size_t(rows), std::move(owner));
  return t;
}

}  // namespace lowbit

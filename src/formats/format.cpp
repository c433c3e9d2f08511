#include "formats/format.h"

#include <algorithm>
#include <array>

#include "util/error.h"
#include "util/strings.h"

namespace lowbit {

namespace {
constexpr std::array<FormatInfo, kNumFormats> kFormats = {{
#define LOWBIT_X(id, name, elem, scheme, block, group, method, w, a, summary) \
  FormatInfo{Format::id, name, ElemType::elem, ScaleScheme::scheme, block, group, Method::method, w, a, summary},
    LOWBIT_FORMATS(LOWBIT_X)
#undef LOWBIT_X
}};

struct Alias {
  const char* alias;
  Format fmt;
};
constexpr Alias kAliases[] = {
    {"mxfp8", Format::MXFP8_E4M3}, {"mxfp6", Format::MXFP6_E3M2}, {"fp8", Format::FP8_E4M3},
    {"fp6", Format::FP6_E3M2},     {"f16", Format::F16},          {"fp32", Format::F32},
    {"float32", Format::F32},      {"bfloat16", Format::BF16},    {"float16", Format::F16},
    {"b1.58", Format::TERNARY},
};
}  // namespace

const FormatInfo& format_info(Format f) { return kFormats[size_t(f)]; }
std::span<const FormatInfo> all_formats() { return kFormats; }
const char* format_name(Format f) { return kFormats[size_t(f)].name; }

std::optional<Format> parse_format(std::string_view name) {
  for (const auto& fi : kFormats)
    if (name == fi.name) return fi.id;
  for (const auto& a : kAliases)
    if (name == a.alias) return a.fmt;
  return std::nullopt;
}

std::string format_names(bool weights, bool acts) {
  std::string s;
  for (const auto& fi : kFormats) {
    if ((weights && fi.weight_ok) || (acts && fi.act_ok)) {
      if (!s.empty()) s += ' ';
      s += fi.name;
    }
  }
  return s;
}

Format parse_format_or_throw(std::string_view name, std::string_view what) {
  if (auto f = parse_format(name)) return *f;
  fail(what, ": unknown format '", name, "'; known formats: ", format_names(true, true));
}

std::vector<Format> parse_format_list(std::string_view names, std::string_view what) {
  std::vector<Format> out;
  for (const std::string& item : split_commas(names)) out.push_back(parse_format_or_throw(item, what));
  LB_CHECK(!out.empty(), what, ": no format given");
  return out;
}

int elem_bits(ElemType e) {
  switch (e) {
    case ElemType::F32: return 32;
    case ElemType::BF16:
    case ElemType::F16: return 16;
    case ElemType::E4M3:
    case ElemType::E5M2:
    case ElemType::I8:
    case ElemType::MXI8: return 8;
    case ElemType::E3M2:
    case ElemType::E2M3: return 6;
    case ElemType::E2M1:
    case ElemType::U4: return 4;
    case ElemType::U2:
    case ElemType::T2: return 2;
    case ElemType::U1: return 1;
    case ElemType::T5: return 0;
  }
  return 0;
}

bool is_subbyte(ElemType e) { return elem_bits(e) < 8; }

size_t row_code_bytes(Format f, int64_t cols) {
  const ElemType e = format_info(f).elem;
  if (e == ElemType::T5) return size_t((cols + 4) / 5);
  return size_t((cols * elem_bits(e) + 7) / 8);
}

int effective_group(Format f, int group) {
  const FormatInfo& fi = format_info(f);
  if (fi.block) return fi.block;
  if (fi.scheme == ScaleScheme::GroupAffine) return group > 0 ? group : fi.default_group;
  return 0;
}

int64_t scales_per_row(Format f, int64_t cols, int group) {
  const FormatInfo& fi = format_info(f);
  switch (fi.scheme) {
    case ScaleScheme::None:
    case ScaleScheme::TensorF32: return 0;
    case ScaleScheme::RowF32: return 1;
    default: {
      const int g = effective_group(f, group);
      return (cols + g - 1) / g;
    }
  }
}

size_t packed_bytes(Format f, int64_t rows, int64_t cols, int group) {
  const FormatInfo& fi = format_info(f);
  size_t bytes = row_code_bytes(f, cols) * size_t(rows);
  const size_t ns = size_t(scales_per_row(f, cols, group)) * size_t(rows);
  switch (fi.scheme) {
    case ScaleScheme::None: break;
    case ScaleScheme::RowF32: bytes += 4 * ns; break;
    case ScaleScheme::TensorF32: bytes += 4; break;
    case ScaleScheme::GroupAffine: bytes += 2 * ns * 2; break;  // bf16 scale + bf16 offset
    case ScaleScheme::BlockE8M0: bytes += ns; break;
    case ScaleScheme::BlockE4M3F32: bytes += ns + 4; break;
  }
  return bytes;
}

double bits_per_weight(Format f, int64_t rows, int64_t cols, int group) {
  if (rows <= 0 || cols <= 0) return 0.0;
  return 8.0 * double(packed_bytes(f, rows, cols, group)) / (double(rows) * double(cols));
}

std::optional<ScaleRule> parse_scale_rule(std::string_view s) {
  if (s == "floor") return ScaleRule::Floor;
  if (s == "rceil") return ScaleRule::RCeil;
  return std::nullopt;
}

}  // namespace lowbit

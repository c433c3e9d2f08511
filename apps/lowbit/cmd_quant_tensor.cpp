// lowbit quant-tensor: fake-quantizes a raw little-endian float32 vector through one format and writes
// dequantize(quantize(x)); --codes also writes the packed codes and scales (layout: docs/formats.md).
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "formats/format.h"
#include "formats/qtensor.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace lowbit::cli {
namespace {

static_assert(std::endian::native == std::endian::little, "quant-tensor reads and writes little-endian float32");

struct QuantTensorArgs {
  std::string format, input, output, codes, scale_rule;
  int group = 0;
  bool group_given = false;
};

void write_file(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), std::fclose);
  if (!f) fail(path, ": cannot open for writing (", std::strerror(errno), ")");
  for (auto [p, n] : parts)
    if (n > 0 && std::fwrite(p, 1, n, f.get()) != n) fail(path, ": write failed (", std::strerror(errno), ")");
  if (std::fflush(f.get()) != 0) fail(path, ": write failed (", std::strerror(errno), ")");
}

QuantOptions options_for(const FormatInfo& fi, const QuantTensorArgs& a) {
  QuantOptions o;
  if (a.group_given) {
    switch (fi.scheme) {
      case ScaleScheme::GroupAffine:
        LB_CHECK(a.group > 0 && a.group % 32 == 0, "--group ", a.group, ": ", fi.name,
                 " needs a positive multiple of 32 (default ", fi.default_group, ")");
        o.group = a.group;
        break;
      case ScaleScheme::BlockE8M0:
      case ScaleScheme::BlockE4M3F32:
        LB_CHECK(a.group == fi.block, "--group ", a.group, ": ", fi.name, " has a fixed block of ", fi.block);
        break;
      default: fail("--group ", a.group, ": ", fi.name, " has no groups (group-wise formats: int4 int2 int1 ",
                    "int4-hqq int2-hqq int1-hqq)");
    }
  }
  if (!a.scale_rule.empty()) {
    const auto rule = parse_scale_rule(a.scale_rule);
    LB_CHECK(rule.has_value(), "--scale-rule '", a.scale_rule, "': expected floor or rceil");
    LB_CHECK(fi.scheme == ScaleScheme::BlockE8M0, "--scale-rule applies to the MX formats only, not ", fi.name);
    o.rule = *rule;
  }
  return o;
}

int run_quant_tensor(const QuantTensorArgs& a) {
  const Format fmt = parse_format_or_throw(a.format, "--format");
  const FormatInfo& fi = format_info(fmt);
  const QuantOptions opt = options_for(fi, a);

  const auto in = MappedFile::open(a.input);
  LB_CHECK(in->size() % 4 == 0, a.input, ": ", in->size(),
           " bytes is not a whole number of float32 values (raw little-endian float32 expected)");
  const int64_t n = int64_t(in->size() / 4);
  LB_CHECK(n > 0, a.input, ": empty input (raw little-endian float32 expected)");
  std::vector<float> x(static_cast<size_t>(n));
  std::memcpy(x.data(), in->data(), in->size());

  // one row: blocks and groups run along the vector, per-row/per-tensor scales cover all of it
  const QTensor t = quantize(x.data(), 1, n, fmt, opt, a.input);
  const std::vector<float> y = dequantize(t);
  write_file(a.output, {{y.data(), y.size() * 4}});
  if (!a.codes.empty()) {
    std::vector<std::pair<const void*, size_t>> parts = {
        {t.codes.data, t.codes.size}, {t.scales.data, t.scales.size}, {t.offsets.data, t.offsets.size}};
    if (fi.scheme == ScaleScheme::TensorF32 || fi.scheme == ScaleScheme::BlockE4M3F32)
      parts.push_back({&t.tensor_scale, 4});
    write_file(a.codes, parts);
  }

  double se = 0.0, max_err = 0.0;
  int64_t nonfinite = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(y[size_t(i)]) - double(x[size_t(i)]);
    if (!std::isfinite(d)) {
      ++nonfinite;
      continue;
    }
    se += d * d;
    max_err = std::max(max_err, std::fabs(d));
  }
  std::printf("%s: %lld values", fi.name, static_cast<long long>(n));
  if (t.group) std::printf(", group %d", t.group);
  if (fi.scheme == ScaleScheme::BlockE8M0) std::printf(", scale rule %s", t.rule == ScaleRule::RCeil ? "rceil" : "floor");
  std::printf(", %.4f bits/value, rmse %.6g, max |err| %.6g", bits_per_weight(fmt, 1, n, t.group),
              std::sqrt(se / double(std::max<int64_t>(1, n - nonfinite))), max_err);
  if (nonfinite) std::printf(", %lld non-finite", static_cast<long long>(nonfinite));
  std::printf("\n");
  return 0;
}

const RegisterCommand kRegister(
    "quant-tensor", "Fake-quantize raw float32 values through a format: writes dequantize(quantize(x))",
    [](CLI::App& app) {
      auto a = std::make_shared<QuantTensorArgs>();
      app.add_option("--format", a->format, "number format: " + format_names(true, true))->required();
      CLI::Option* g = app.add_option("--group", a->group, "group size of int4/int2/int1 (a multiple of 32)");
      app.add_option("--scale-rule", a->scale_rule, "MX scale rule: floor (OCP, default) or rceil (NVIDIA)");
      app.add_option("--input", a->input, "raw little-endian float32 values")->required();
      app.add_option("--output", a->output, "where to write dequantize(quantize(x)) as float32")->required();
      app.add_option("--codes", a->codes, "also write the packed codes followed by the scales");
      return [a, g] {
        a->group_given = g->count() > 0;
        return run_quant_tensor(*a);
      };
    });

}  // namespace
}  // namespace lowbit::cli

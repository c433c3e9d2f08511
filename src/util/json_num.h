// Checked reads of numbers from JSON that came from a file: nlohmann's get<int>() of 1e30, or get<float>()
// of 1e300, is undefined behaviour; these throw an Error naming `what` instead.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace lowbit {

inline int64_t json_to_int(const nlohmann::json& v, const std::string& what, int64_t lo = INT32_MIN,
                           int64_t hi = INT32_MAX) {
  if (!v.is_number_integer()) fail(what, ": expected an integer, got ", v.dump());
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max()) || int64_t(u) > hi)
      fail(what, ": ", u, " is out of range [", lo, ", ", hi, "]");
    return int64_t(u);
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) fail(what, ": ", x, " is out of range [", lo, ", ", hi, "]");
  return x;
}

inline float json_to_float(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number()) fail(what, ": expected a number, got ", v.dump());
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > double(FLT_MAX)) fail(what, ": ", d, " is not a finite float");
  return float(d);
}

}  // namespace lowbit

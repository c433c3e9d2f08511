// CUDA-only entry points beyond the Runner API (bench --profile).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/runner.h"

namespace lowbit::cuda {

// Runs one decode step op by op with events around each: (op name, milliseconds), in launch order.
// `r` must be a CUDA runner; the step writes the KV cache at `pos` and consumes `token`.
std::vector<std::pair<std::string, double>> profile_decode_step(Runner& r, int token, int pos);

}  // namespace lowbit::cuda

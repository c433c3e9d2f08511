// Random weights directly in a format's packed codes: for speed runs on synthetic models, where
// quantizing billions of random floats would cost minutes and the decode speed does not depend on the
// values. Every code is a valid, finite code of the format (no NaN/Inf patterns), scales are chosen so
// the decoded weights have a magnitude like a trained model's (~0.02), never all zeros; seeded.
#pragma once
#include <cstdint>

#include "formats/qtensor.h"

namespace lowbit {

QTensor random_qtensor(Format fmt, int64_t rows, int64_t cols, int group, uint64_t seed, std::string name = "");

}  // namespace lowbit

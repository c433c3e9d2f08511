// Recording static activation ranges: the calibration text is run through the model on the CPU in
// windows of ctx positions, and every linear layer's input absmax is kept (engine/calibration.h).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/calibration.h"
#include "engine/runner.h"
#include "model/model.h"

namespace lowbit {

struct CalibrateOptions {
  int ctx = 512;         // positions per window (BOS included)
  int max_windows = 0;   // 0 = the whole text
  int bos_id = -1;       // < 0: windows start without BOS
  int threads = 0;
  std::optional<Format> acts;  // activation format while recording (normally none: the fp32 ranges)
  std::function<void(int64_t, int64_t)> progress;  // (windows done, total)
};

// Runs text_tokens through `model` (non-overlapping windows) and returns the per-linear input ranges.
// Throws Error when the text is shorter than two tokens.
ActCalibration calibrate_activations(Model& model, const std::vector<int>& text_tokens, const CalibrateOptions& opt);

}  // namespace lowbit

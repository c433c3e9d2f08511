// The CUDA backend as seen from the engine and the CLI (implemented in backend/cuda, or a stub when
// lowbit is built without CUDA).
#pragma once
#include <memory>
#include <string>

#include "engine/runner.h"

namespace lowbit {

// True when lowbit was built with CUDA and a usable GPU is present; otherwise *why says what is missing.
bool cuda_available(std::string* why = nullptr);
// Uploads (and repacks) the model's weights to the GPU. Throws Error for unsupported formats/options.
std::unique_ptr<Runner> make_cuda_runner(Model& model, const RunnerOptions& opt);

}  // namespace lowbit

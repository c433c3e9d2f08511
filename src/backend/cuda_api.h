// The CUDA backend as seen from the engine and the CLI (implemented in backend/cuda, or a stub when
// lowbit is built without CUDA).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/runner.h"

namespace lowbit {

// True when lowbit was built with CUDA and a usable GPU is present; otherwise *why says what is missing.
bool cuda_available(std::string* why = nullptr);
struct GpuInfo {
  std::string name;
  int driver_version = 0;    // e.g. 13000 (CUDA driver API version)
  int runtime_version = 0;
  std::string driver;        // the kernel driver's version string when readable (nvidia-smi's), else ""
  size_t total_memory = 0;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
};
// Throws Error when no GPU is usable.
GpuInfo cuda_gpu_info();
// Device read bandwidth in GB/s (1e9 B/s), measured with a read-only kernel over `bytes` of memory:
// the ceiling a memory-bound decode step can reach, measured in the same run as the benchmark.
double cuda_measure_read_bandwidth(size_t bytes = size_t(4) << 30);

// Uploads (and repacks) the model's weights to the GPU. Throws Error for unsupported formats/options.
std::unique_ptr<Runner> make_cuda_runner(Model& model, const RunnerOptions& opt);

// Runs one decode step of a CUDA runner op by op with events around each: (op name, milliseconds) in
// launch order (the CUDA_LAUNCH_BLOCKING-style view). Writes the KV cache at `pos`, consumes `token`.
std::vector<std::pair<std::string, double>> cuda_profile_decode_step(Runner& r, int token, int pos);

}  // namespace lowbit

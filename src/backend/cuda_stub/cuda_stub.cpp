// Built when lowbit is configured without CUDA: the CUDA backend reports itself unavailable.
#include "backend/cuda_api.h"

#include "util/error.h"

namespace lowbit {

bool cuda_available(std::string* why) {
  if (why) *why = "this lowbit was built without CUDA (LOWBIT_CUDA=OFF or no nvcc at build time)";
  return false;
}

std::unique_ptr<Runner> make_cuda_runner(Model&, const RunnerOptions&) {
  fail("--device cuda: this lowbit was built without CUDA (configure with LOWBIT_CUDA=ON on a machine with nvcc)");
}

GpuInfo cuda_gpu_info() { fail("this lowbit was built without CUDA"); }
double cuda_measure_read_bandwidth(size_t) { fail("this lowbit was built without CUDA"); }

std::vector<std::pair<std::string, double>> cuda_profile_decode_step(Runner&, int, int) {
  fail("--profile needs the CUDA backend; this lowbit was built without CUDA");
}

PromptProfile cuda_profile_prompt(Runner&, const std::vector<int>&, Sampler&) {
  fail("--profile needs the CUDA backend; this lowbit was built without CUDA");
}

void cuda_reread_env_knobs(Runner&) {}  // nothing reads them without CUDA

std::vector<StepOpTimes> cuda_timeline_decode_step(Runner&, int, int) {
  fail("--timeline needs the CUDA backend; this lowbit was built without CUDA");
}

}  // namespace lowbit

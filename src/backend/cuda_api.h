// The CUDA backend as seen from the engine and the CLI (implemented in backend/cuda, or a stub when
// lowbit is built without CUDA).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/runner.h"
#include "engine/sampler.h"

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

// The prompt's time on the GPU (`lowbit bench --profile`): its ops run one by one with events around each
// (summed over layers as for the decode step), then the whole prompt and its first token as forward_sample
// runs it (the GPU's time between two events, the host's time to enqueue it, the wall time until the token is
// on the host). The prompt goes to positions 0..n-1.
struct PromptProfile {
  int tokens = 0;
  std::vector<std::pair<std::string, double>> ops;  // (op, ms) in launch order
  double gpu_ms = 0, enqueue_ms = 0, wall_ms = 0;
};
PromptProfile cuda_profile_prompt(Runner& r, const std::vector<int>& tokens, Sampler& sampler);

// Reads the CUDA backend's A/B knobs (LOWBIT_GEMV_*, LOWBIT_PDL, LOWBIT_ATTN_*; docs/device.md) from
// the environment again and drops the runner's captured decode graph, so that the next step runs (and
// captures) under the new values: `lowbit bench --settings` measures several of one loaded model.
void cuda_reread_env_knobs(Runner& r);

// One op of a decode step as it ran inside a CUDA graph (kernels overlapping through programmatic dependent
// launch), from %globaltimer stamps the stream GEMV and decode attention kernels write per block. Times in
// microseconds from the step's first stamp; `stamped` is false for kernels that write none (embedding,
// sampling, GEMV variants other than the stream kernels): their time shows as the next op's wait.
struct StepOpTimes {
  std::string name;
  bool stamped = false;
  int blocks = 0;        // blocks that wrote stamps
  int doubled = 0;       // multiprocessors that ran more than one of them
  double start = 0;      // the first block's entry
  double released = 0;   // median over blocks: past pdl_wait (the previous kernel has completed)
  double staged = 0;     // median: inputs staged (x normalized and converted; attention: q and the new row)
  double arrived = 0;    // stream GEMVs' one-pass staging, medians (0 where not written): x's loads arrived,
  double reduced = 0;    // and the block reduction (RMSNorm, scaling) done
  double last_released = 0;  // medians of each block's last warp: past pdl_wait,
  double last_arrived = 0;   // and its x arrived (0 where not written)
  double end = 0;        // the last block's exit
  double end_median = 0; // the median block's exit
  // the blocks that exit last (the latest tenth, at least one) against the median block: how much later they
  // entered, passed pdl_wait, finished staging and exited (0 where fewer than 8 blocks)
  double late_entry = 0, late_release = 0, late_staged = 0, late_end = 0;
  // who those latest blocks are: their multiprocessors (%smid) and block indices (the first blocks of a stream
  // GEMV take one tile more than the others), to tell a slow multiprocessor from a larger share of work
  std::vector<int> late_sms, late_blocks;
};
// Captures one decode step with stamps into a graph of its own, replays it twice (warm-up, then measured)
// and returns its ops in launch order. Consumes `token` at `pos` and the sampled token at pos + 1.
std::vector<StepOpTimes> cuda_timeline_decode_step(Runner& r, int token, int pos);

}  // namespace lowbit

// The L2 prefetcher: a few multiprocessors set aside (gemv_set_reserved_sms) run one long-lived kernel that
// brings the decode step's weights into L2 ahead of the GEMVs, in the order their blocks read them
// (gemv_stream_read_order), so that DRAM keeps streaming through the step's fixed-cost phases (the waits
// between launches, the stagings of x, the attention, the last blocks' tails) instead of idling there.
//
// Pacing: block 0 of every stream-GEMV launch counts itself (gemv_set_progress); the prefetcher knows the
// step's launches and their bytes, estimates how far into the current launch its blocks have read (time since
// the launch began x an assumed rate) and stays at most `window` bytes ahead of that, so that what it brings
// in is still in L2 when it is read. It exits when told to (stop) or when no launch has begun for `idle`.
// Opt-in: LOWBIT_L2PF=<SMs> (docs/cuda-kernels.md, "A prefetcher on its own SMs").
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_util.cuh"

namespace lowbit::cuda {

// A piece of weight to bring into L2: ptr 16-byte aligned, bytes a multiple of 16 (<= 1 MiB).
struct PrefetchChunk {
  const void* ptr;
  uint32_t bytes;
};

struct L2PrefetchConfig {
  int sms = 0;                  // prefetcher blocks, one per multiprocessor (0: off)
  uint32_t window_kb = 24 << 10;  // how far ahead of the estimated read position
  uint32_t chunk = 16 << 10;    // bytes per prefetch instruction
  double rate_gbs = 3000.0;     // assumed read rate within a launch (GB/s)
  double idle_ms = 20.0;        // exit after this long without a new launch
};

// LOWBIT_L2PF=<SMs> (default 0: off), LOWBIT_L2PF_WINDOW=<MB> (24), LOWBIT_L2PF_CHUNK=<KB> (16),
// LOWBIT_L2PF_RATE=<GB/s> (3000).
L2PrefetchConfig l2_prefetch_config_from_env();

class L2Prefetcher {
 public:
  // launches: the step's stream-GEMV launches in order, each its chunks in read order.
  L2Prefetcher(const L2PrefetchConfig& cfg, const std::vector<std::vector<PrefetchChunk>>& launches);
  ~L2Prefetcher();
  L2Prefetcher(const L2Prefetcher&) = delete;
  L2Prefetcher& operator=(const L2Prefetcher&) = delete;

  unsigned* counter() const { return counter_.get<unsigned>(); }
  // Starts the kernel unless it runs: the counter is zeroed on `s` (before the step launched next on s) and the
  // prefetcher begins at the step's first launch.
  void ensure_running(cudaStream_t s);
  // Tells the kernel to leave and waits for it (before anything that is not the captured decode step); prints
  // what the runs since the last stop issued (stderr).
  void stop();
  size_t step_bytes() const { return step_bytes_; }
  size_t chunks() const { return n_; }

 private:
  L2PrefetchConfig cfg_;
  DeviceBuffer chunks_, cum_kb_, launch_first_, launch_kb_, counter_, stats_;
  int runs_ = 0;  // kernel launches since the last stop()
  unsigned* stop_host_ = nullptr;  // mapped pinned memory
  unsigned* stop_dev_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t zeroed_ = nullptr;
  int launches_ = 0;
  size_t n_ = 0, step_bytes_ = 0;
  uint32_t step_kb_ = 0;
  int smem_ = 0;
};

}  // namespace lowbit::cuda

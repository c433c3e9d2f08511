// The L2 prefetcher (l2_prefetch.cuh).
#include <algorithm>
#include <cstdio>

#include "backend/cuda/l2_prefetch.cuh"
#include "backend/cuda/launch.cuh"

namespace lowbit::cuda {

namespace {

struct PfArgs {
  const PrefetchChunk* chunks;  // [n] the step's chunks in read order
  const uint32_t* cum_kb;       // [n] KB of the step before each chunk
  const uint32_t* launch_first; // [L + 1] first chunk of each launch (n at L)
  const uint32_t* launch_kb;    // [L + 1] KB of the step before each launch (the step's at L)
  uint32_t n, L, step_kb, window_kb;
  float kb_per_ns;              // the assumed read rate within a launch
  unsigned long long idle_ns;
  const unsigned* progress;     // stream-GEMV launches begun since the counter was zeroed
  const volatile unsigned* stop;  // mapped host memory
  unsigned long long* stats;    // [0] bytes issued, [1] launches seen at exit (the last block's)
};

__device__ __forceinline__ unsigned ld_relaxed(const unsigned* p) {
  unsigned v;
  asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}

// One warp per block, one block per reserved multiprocessor (its shared memory keeps every other block of
// the step off that multiprocessor). All warps walk the same sequence of groups of 32 x blocks chunks (each
// lane one chunk of a group), the sequence repeating step after step; a group is issued once the read
// position estimate plus the window has reached it.
__global__ void __launch_bounds__(32, 1) l2_prefetch_kernel(const PfArgs a) {
  const unsigned lane = threadIdx.x, G = gridDim.x * 32u, me = blockIdx.x * 32u + lane;
  unsigned long long pos = 0;  // the next group's first chunk, counted from the first step's first
  unsigned seen = 0;
  unsigned long long t_seen = global_ns(), issued = 0;
  auto leave = [&] {
    issued += __shfl_xor_sync(0xffffffffu, issued, 16);  // (lanes issued different chunks: sum them)
    issued += __shfl_xor_sync(0xffffffffu, issued, 8);
    issued += __shfl_xor_sync(0xffffffffu, issued, 4);
    issued += __shfl_xor_sync(0xffffffffu, issued, 2);
    issued += __shfl_xor_sync(0xffffffffu, issued, 1);
    if (lane == 0) {
      atomicAdd(a.stats, issued);
      atomicMax(a.stats + 1, (unsigned long long)seen);
    }
  };
  for (unsigned it = 0;; ++it) {
    unsigned v = 0, quit = 0;
    if (lane == 0) {
      v = ld_relaxed(a.progress);
      quit = (it & 63) == 0 && *a.stop;
    }
    v = __shfl_sync(0xffffffffu, v, 0);
    quit = __shfl_sync(0xffffffffu, quit, 0);
    if (quit) {
      leave();
      return;
    }
    const unsigned long long now = global_ns();
    if (v != seen) {
      seen = v;
      t_seen = now;
    } else if (now - t_seen > a.idle_ns) {
      leave();  // the decode loop has paused or ended
      return;
    }
    // where the GEMVs read now: launch v - 1 (of step (v - 1) / L) began at t_seen
    unsigned long long read_kb = 0, first = 0;
    if (v > 0) {
      const unsigned long long i = v - 1ull, step = i / a.L;
      const unsigned li = unsigned(i - step * a.L);
      const unsigned long long into = (unsigned long long)(float(now - t_seen) * a.kb_per_ns);
      read_kb = step * a.step_kb + a.launch_kb[li] + min(into, (unsigned long long)(a.launch_kb[li + 1] - a.launch_kb[li]));
      first = step * a.n + a.launch_first[li];
    }
    if (pos < first) pos = first;  // fell behind: what the current launch has begun is not worth fetching
    const unsigned long long step_p = pos / a.n;
    const unsigned long long at_kb = step_p * a.step_kb + a.cum_kb[pos - step_p * a.n];
    if (at_kb > read_kb + a.window_kb) {
      __nanosleep(200);
      continue;
    }
    const unsigned long long c = pos + me;
    const PrefetchChunk ch = a.chunks[c % a.n];
    // a hint: the copy engine brings the bytes into L2 and nothing waits for them
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(ch.ptr), "r"(ch.bytes) : "memory");
    issued += ch.bytes;
    pos += G;
  }
}

}  // namespace

L2PrefetchConfig l2_prefetch_config_from_env() {
  L2PrefetchConfig c;
  c.sms = env_int("LOWBIT_L2PF", 0, 0, 64);
  c.window_kb = uint32_t(env_int("LOWBIT_L2PF_WINDOW", 24, 1, 1024)) << 10;
  c.chunk = uint32_t(env_int("LOWBIT_L2PF_CHUNK", 16, 1, 1024)) << 10;
  c.rate_gbs = env_double("LOWBIT_L2PF_RATE", 3000.0, 1.0, 100000.0);
  return c;
}

L2Prefetcher::L2Prefetcher(const L2PrefetchConfig& cfg, const std::vector<std::vector<PrefetchChunk>>& launches)
    : cfg_(cfg) {
  LB_CHECK(cfg.sms > 0, "L2Prefetcher: no multiprocessors");
  LB_CHECK(!launches.empty(), "L2Prefetcher: no launches");
  std::vector<PrefetchChunk> all;
  std::vector<uint32_t> cum, first, lkb;
  uint64_t bytes = 0;
  for (const auto& l : launches) {
    first.push_back(uint32_t(all.size()));
    lkb.push_back(uint32_t(bytes >> 10));
    for (const PrefetchChunk& c : l) {
      LB_CHECK(c.bytes % 16 == 0 && c.bytes > 0 && c.bytes <= (1u << 20) &&
                   reinterpret_cast<uintptr_t>(c.ptr) % 16 == 0,
               "L2Prefetcher: a chunk of ", c.bytes, " bytes at ", c.ptr, " (expected 16-byte aligned, <= 1 MiB)");
      all.push_back(c);
      cum.push_back(uint32_t(bytes >> 10));
      bytes += c.bytes;
    }
  }
  LB_CHECK(!all.empty() && (bytes >> 10) < (uint64_t(1) << 31), "L2Prefetcher: ", bytes, " bytes per step");
  first.push_back(uint32_t(all.size()));
  lkb.push_back(uint32_t(bytes >> 10));
  n_ = all.size();
  step_bytes_ = bytes;
  step_kb_ = uint32_t(bytes >> 10);
  launches_ = int(launches.size());
  auto put = [](DeviceBuffer& d, const void* p, size_t nbytes) {
    d.alloc(nbytes);
    LB_CUDA_CHECK(cudaMemcpy(d.get(), p, nbytes, cudaMemcpyHostToDevice));
  };
  put(chunks_, all.data(), all.size() * sizeof(PrefetchChunk));
  put(cum_kb_, cum.data(), cum.size() * 4);
  put(launch_first_, first.data(), first.size() * 4);
  put(launch_kb_, lkb.data(), lkb.size() * 4);
  stats_.alloc(2 * sizeof(unsigned long long));
  LB_CUDA_CHECK(cudaMemset(stats_.get(), 0, stats_.size()));
  counter_.alloc(sizeof(unsigned));
  LB_CUDA_CHECK(cudaMemset(counter_.get(), 0, sizeof(unsigned)));
  LB_CUDA_CHECK(cudaHostAlloc(&stop_host_, sizeof(unsigned), cudaHostAllocMapped));
  *stop_host_ = 0;
  LB_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&stop_dev_), stop_host_, 0));
  LB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  LB_CUDA_CHECK(cudaEventCreateWithFlags(&zeroed_, cudaEventDisableTiming));
  // all the shared memory a block may have: no block of the step that uses shared memory fits beside it
  int dev = 0;
  LB_CUDA_CHECK(cudaGetDevice(&dev));
  LB_CUDA_CHECK(cudaDeviceGetAttribute(&smem_, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  LB_CUDA_CHECK(cudaFuncSetAttribute(l2_prefetch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_));
}

L2Prefetcher::~L2Prefetcher() {
  if (stop_host_) {
    *reinterpret_cast<volatile unsigned*>(stop_host_) = 1;
    if (stream_) cudaStreamSynchronize(stream_);
    cudaFreeHost(stop_host_);
  }
  if (zeroed_) cudaEventDestroy(zeroed_);
  if (stream_) cudaStreamDestroy(stream_);
}

void L2Prefetcher::ensure_running(cudaStream_t s) {
  const cudaError_t q = cudaStreamQuery(stream_);
  if (q == cudaErrorNotReady) return;  // running
  LB_CUDA_CHECK(q);
  *reinterpret_cast<volatile unsigned*>(stop_host_) = 0;
  LB_CUDA_CHECK(cudaMemsetAsync(counter_.get(), 0, sizeof(unsigned), s));
  LB_CUDA_CHECK(cudaEventRecord(zeroed_, s));
  LB_CUDA_CHECK(cudaStreamWaitEvent(stream_, zeroed_, 0));
  PfArgs a{};
  a.chunks = chunks_.get<PrefetchChunk>();
  a.cum_kb = cum_kb_.get<uint32_t>();
  a.launch_first = launch_first_.get<uint32_t>();
  a.launch_kb = launch_kb_.get<uint32_t>();
  a.n = uint32_t(n_);
  a.L = uint32_t(launches_);
  a.step_kb = step_kb_;
  a.window_kb = cfg_.window_kb;
  a.kb_per_ns = float(cfg_.rate_gbs / 1024.0);  // GB/s = bytes/ns; / 1024: KB/ns
  a.idle_ns = (unsigned long long)(cfg_.idle_ms * 1e6);
  a.progress = counter_.get<unsigned>();
  a.stop = stop_dev_;
  a.stats = stats_.get<unsigned long long>();
  ++runs_;
  l2_prefetch_kernel<<<cfg_.sms, 32, size_t(smem_), stream_>>>(a);
  LB_CUDA_LAUNCH_CHECK();
}

void L2Prefetcher::stop() {
  *reinterpret_cast<volatile unsigned*>(stop_host_) = 1;
  LB_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (runs_ == 0) return;
  // what the runs since the last stop did: bytes issued against the bytes the launches they saw read
  unsigned long long st[2] = {0, 0};
  LB_CUDA_CHECK(cudaMemcpyAsync(st, stats_.get(), sizeof st, cudaMemcpyDeviceToHost, stream_));
  LB_CUDA_CHECK(cudaMemsetAsync(stats_.get(), 0, stats_.size(), stream_));
  LB_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::fprintf(stderr, "lowbit: L2 prefetcher: %d run(s), %.3f GB issued; the last run saw %llu launches (%.2f steps)\n",
               runs_, double(st[0]) / 1e9, st[1], double(st[1]) / launches_);
  runs_ = 0;
}

}  // namespace lowbit::cuda

// Memory-queue probe: how long a burst of L2 hits (what a GEMV's staging of x is) takes while other
// multiprocessors stream weights from DRAM, as a function of how many bytes they keep in flight and of who
// issues them (ordinary loads on every other SM, or bulk L2 prefetches from a few SMs). It decides whether
// a few multiprocessors set aside to prefetch the next weights into L2 could keep DRAM busy through the
// decode step's fixed-cost phases without delaying x (docs/cuda-kernels.md, "A prefetcher on its own SMs").
//
//   lowbit_memqueue_bench [--probes N]
//
// Per configuration: the streamers' DRAM read rate (bytes / span of the launch), the prefetchers' issue rate,
// and the probe's burst time (512 threads load 16 KB of an L2-resident buffer, until all have arrived) and
// dependent-load latency (one thread, 8 chained L2 hits), median and 90th percentile over the probes.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#define CK(call)                                                                                  \
  do {                                                                                            \
    cudaError_t e_ = (call);                                                                      \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "memqueue_bench: %s failed: %s (%s:%d)\n", #call, cudaGetErrorString(e_), \
                   __FILE__, __LINE__);                                                           \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

namespace {

struct Flags {
  unsigned started;   // streamer / prefetcher blocks that have begun (the probe starts when all have)
  unsigned stop;      // set by the probe when done: streamers and prefetchers leave
  unsigned long long bytes;  // read (streamers) or issued (prefetchers)
  unsigned long long t_first, t_last;  // span of the streaming blocks (%globaltimer, ns)
  unsigned long long pbytes, pt_first, pt_last;  // the prefetchers' own
};

__device__ __forceinline__ unsigned long long gtimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ unsigned ld_volatile(const unsigned* p) {
  unsigned v;
  asm volatile("ld.volatile.global.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}
// 16-byte weight-style load: no L1 allocation (as the GEMV's weight loads)
__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
// 16-byte L2 load (bypasses L1: every probe is an L2 access)
__device__ __forceinline__ uint4 ld_cg(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.cg.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// One block of 512 threads (launched with 120 KB of shared memory so that no other block shares its SM): waits until `need` streaming blocks have started, then every `gap_ns` a burst
// (each thread two 16-byte L2 loads of x: 16 KB) and a chain (thread 0, 8 dependent L2 loads).
__global__ void probe_kernel(const uint4* x, const unsigned* chain, Flags* f, unsigned need, int probes,
                             unsigned gap_ns, unsigned* burst_ns, unsigned* chain_ns, unsigned* sink) {
  __shared__ unsigned long long t0s;
  const unsigned long long give_up = gtimer() + 2000000000ull;  // never hang: 2 s
  if (threadIdx.x == 0)
    while (ld_volatile(&f->started) < need && gtimer() < give_up) {
    }
  __syncthreads();
  unsigned acc = 0;
  unsigned long long next = gtimer() + 20000;  // let the streamers reach their rate
  for (int i = 0; i < probes; ++i) {
    if (threadIdx.x == 0) {
      while (gtimer() < next) {
      }
      t0s = gtimer();
    }
    __syncthreads();
    const uint4 a = ld_cg(x + threadIdx.x), b = ld_cg(x + 512 + threadIdx.x);
    acc += a.x ^ b.y;  // consumed before the barrier: the barrier waits for every load
    __syncthreads();
    if (threadIdx.x == 0) {
      const unsigned long long t1 = gtimer();
      burst_ns[i] = unsigned(t1 - t0s);
      unsigned idx = 0;
      const unsigned long long c0 = gtimer();
      for (int h = 0; h < 8; ++h) {
        unsigned v;
        asm volatile("ld.global.cg.u32 %0, [%1];" : "=r"(v) : "l"(chain + idx));
        idx = v;
      }
      chain_ns[i] = unsigned((gtimer() - c0) / 8);
      acc += idx;
      next = t1 + gap_ns;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicExch(&f->stop, 1u);
  if (acc == 0x12345678u) *sink = acc;
}

// Streamers: each block reads its own region of `src` (bytes_per_block), each thread keeping U 16-byte
// loads in flight (512 x U x 16 bytes per SM), until the probe says stop; wraps around its region.
template <int U>
__global__ void __launch_bounds__(512, 1)
    stream_kernel(const uint4* src, size_t vecs_per_block, Flags* f, unsigned* sink) {
  const uint4* p = src + size_t(blockIdx.x) * vecs_per_block;
  const unsigned long long start = gtimer();
  if (threadIdx.x == 0) atomicAdd(&f->started, 1u);
  unsigned acc = 0;
  size_t off = threadIdx.x;
  unsigned long long n = 0;
  const unsigned long long give_up = start + 2000000000ull;
  for (;;) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) v[u] = ld_stream(p + off + size_t(u) * 512);
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= v[u].x + v[u].w;
    n += U;
    off += size_t(U) * 512;
    if (off + size_t(U) * 512 > vecs_per_block) off = threadIdx.x;
    if ((n & 63) == 0 && (ld_volatile(&f->stop) || gtimer() > give_up)) break;
  }
  const unsigned long long end = gtimer();
  atomicAdd(&f->bytes, n * 16ull);
  if (threadIdx.x == 0) {
    atomicMin(&f->t_first, start);
    atomicMax(&f->t_last, end);
  }
  if (acc == 0x12345678u) *sink = acc;
}

// Prefetchers: one issuing lane per block, bulk L2 prefetches of `chunk` bytes through its own region
// (wrapping), until stop; `gap_ns` between chunks paces them (0: as fast as they issue).
__global__ void __launch_bounds__(32, 1)
    prefetch_kernel(const char* src, size_t bytes_per_block, unsigned chunk, unsigned gap_ns, Flags* f) {
  if (threadIdx.x != 0) return;
  const char* p = src + size_t(blockIdx.x) * bytes_per_block;
  const unsigned long long start = gtimer();
  atomicAdd(&f->started, 1u);
  size_t off = 0;
  unsigned long long n = 0;
  const unsigned long long give_up = start + 2000000000ull;
  unsigned long long next = start;
  for (;;) {
    if (gap_ns) {
      while (gtimer() < next) {
      }
      next += gap_ns;
    }
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + off), "r"(chunk) : "memory");
    n += chunk;
    off += chunk;
    if (off + chunk > bytes_per_block) off = 0;
    if ((n / chunk) % 8 == 0 && (ld_volatile(&f->stop) || gtimer() > give_up)) break;
  }
  const unsigned long long end = gtimer();
  atomicAdd(&f->pbytes, n);
  atomicMin(&f->pt_first, start);
  atomicMax(&f->pt_last, end);
}

// Reads `vecs` 16-byte vectors with every SM (for the prefetch-then-read check); one pass, each thread 8
// independent loads in flight at a time
__global__ void read_once(const uint4* src, size_t vecs, unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < vecs; i += 8 * stride) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = i + u * stride < vecs ? ld_stream(src + i + u * stride) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= v[u].y;
  }
  if (acc == 0x12345678u) *sink = acc;
}
__global__ void prefetch_once(const char* src, size_t bytes, unsigned chunk) {
  // block b, lane 0: chunks b, b + grid, ...
  if (threadIdx.x != 0) return;
  for (size_t o = size_t(blockIdx.x) * chunk; o + chunk <= bytes; o += size_t(gridDim.x) * chunk)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(src + o), "r"(chunk) : "memory");
}

struct Stats {
  double med, p90;
};
Stats stats(std::vector<unsigned> v) {
  std::sort(v.begin(), v.end());
  return {double(v[v.size() / 2]), double(v[v.size() * 9 / 10])};
}

struct Dev {
  int sms = 0;
  char* big = nullptr;  // DRAM-sized buffer the streamers read
  size_t big_bytes = 0;
  uint4* x = nullptr;
  unsigned* chain = nullptr;
  Flags* f = nullptr;
  unsigned *burst = nullptr, *chn = nullptr, *sink = nullptr;
  cudaStream_t s[3];
  int probes = 400;
};

struct Row {
  std::string what;
  double stream_gbs = 0, pf_gbs = 0;
  Stats burst{}, chain{};
};

using StreamLaunch = void (*)(const Dev&, int blocks, size_t vecs_per_block);
template <int U>
void launch_stream(const Dev& d, int blocks, size_t vpb) {
  stream_kernel<U><<<blocks, 512, 120 * 1024, d.s[1]>>>(reinterpret_cast<const uint4*>(d.big), vpb, d.f, d.sink);
  CK(cudaGetLastError());
}
StreamLaunch stream_for(int u) {
  switch (u) {
    case 1: return launch_stream<1>;
    case 2: return launch_stream<2>;
    case 4: return launch_stream<4>;
    case 8: return launch_stream<8>;
    default: return launch_stream<16>;
  }
}

// One configuration: `sblocks` streamers with U loads in flight per thread, `pblocks` prefetchers.
Row run(Dev& d, const std::string& what, int sblocks, int u, int pblocks, unsigned chunk, unsigned pgap) {
  Flags h{};
  h.t_first = h.pt_first = ~0ull;
  CK(cudaMemcpy(d.f, &h, sizeof h, cudaMemcpyHostToDevice));
  // the probe first (it takes one SM and waits for the others to start)
  probe_kernel<<<1, 512, 120 * 1024, d.s[0]>>>(d.x, d.chain, d.f, unsigned(sblocks + pblocks), d.probes, 5000, d.burst,
                                      d.chn, d.sink);
  CK(cudaGetLastError());
  // halves of the big buffer: streamers in the first, prefetchers in the second
  const size_t half = d.big_bytes / 2;
  if (sblocks) stream_for(u)(d, sblocks, half / 16 / size_t(sblocks) / 4096 * 4096);
  if (pblocks) {
    prefetch_kernel<<<pblocks, 32, 120 * 1024, d.s[2]>>>(d.big + half, half / size_t(pblocks) / 65536 * 65536, chunk,
                                                         pgap, d.f);
    CK(cudaGetLastError());
  }
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(&h, d.f, sizeof h, cudaMemcpyDeviceToHost));
  std::vector<unsigned> b(size_t(d.probes)), c(size_t(d.probes));
  CK(cudaMemcpy(b.data(), d.burst, b.size() * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(c.data(), d.chn, c.size() * 4, cudaMemcpyDeviceToHost));
  Row r;
  r.what = what;
  if (sblocks && h.t_last > h.t_first) r.stream_gbs = double(h.bytes) / double(h.t_last - h.t_first);
  if (pblocks && h.pt_last > h.pt_first) r.pf_gbs = double(h.pbytes) / double(h.pt_last - h.pt_first);
  r.burst = stats(b);
  r.chain = stats(c);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Dev d;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--probes") && i + 1 < argc) {
      d.probes = std::atoi(argv[++i]);
      if (d.probes < 10 || d.probes > 100000) {
        std::fprintf(stderr, "memqueue_bench: --probes must be in [10, 100000]\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: lowbit_memqueue_bench [--probes N]\n");
      return 2;
    }
  }
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("memqueue_bench: no CUDA device, skipped\n");
    return 0;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  d.sms = prop.multiProcessorCount;
  std::printf("memqueue_bench: %s, %d SMs, L2 %d MB\n", prop.name, d.sms, prop.l2CacheSize >> 20);
  d.big_bytes = size_t(4) << 30;
  CK(cudaMalloc(&d.big, d.big_bytes));
  CK(cudaMemset(d.big, 1, d.big_bytes));
  CK(cudaMalloc(&d.x, 16384));
  CK(cudaMemset(d.x, 0, 16384));
  // the chain: 8 words, each the index of the next, 128 bytes apart (every probe touches all 8 lines, so
  // they stay in L2 under the streaming)
  std::vector<unsigned> ch(32 * 8);
  for (unsigned i = 0; i < 8; ++i) ch[size_t(i) * 32] = ((i + 1u) % 8u) * 32u;
  CK(cudaMalloc(&d.chain, ch.size() * 4));
  CK(cudaMemcpy(d.chain, ch.data(), ch.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&d.f, sizeof(Flags)));
  CK(cudaMalloc(&d.burst, size_t(d.probes) * 4));
  CK(cudaMalloc(&d.chn, size_t(d.probes) * 4));
  CK(cudaMalloc(&d.sink, 4));
  for (auto& s : d.s) CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CK(cudaFuncSetAttribute(stream_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  CK(cudaFuncSetAttribute(stream_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  CK(cudaFuncSetAttribute(stream_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  CK(cudaFuncSetAttribute(stream_kernel<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  CK(cudaFuncSetAttribute(stream_kernel<16>, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  CK(cudaFuncSetAttribute(probe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  CK(cudaFuncSetAttribute(prefetch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));

  std::vector<Row> rows;
  const int others = d.sms - 1;
  rows.push_back(run(d, "probe alone", 0, 1, 0, 0, 0));
  for (int u : {1, 2, 4, 8, 16}) {
    char w[96];
    std::snprintf(w, sizeof w, "loads: %d SMs x %d KB in flight", others, 8 * u);
    rows.push_back(run(d, w, others, u, 0, 0, 0));
  }
  for (int sb : {8, 16, 32, 64}) {
    char w[96];
    std::snprintf(w, sizeof w, "loads: %d SMs x 128 KB in flight", sb);
    rows.push_back(run(d, w, sb, 16, 0, 0, 0));
  }
  for (int pb : {1, 2, 4, 8, 16}) {
    char w[96];
    std::snprintf(w, sizeof w, "L2 prefetch: %d SMs, 32 KB chunks", pb);
    rows.push_back(run(d, w, 0, 1, pb, 32768, 0));
  }
  for (unsigned gap : {2000u, 1000u, 500u}) {  // paced: 8 SMs x 32 KB per gap
    char w[96];
    std::snprintf(w, sizeof w, "L2 prefetch: 8 SMs, 32 KB every %u ns", gap);
    rows.push_back(run(d, w, 0, 1, 8, 32768, gap));
  }
  {
    char w[96];
    std::snprintf(w, sizeof w, "loads %d SMs x 64 KB + prefetch 8 SMs", others - 8);
    rows.push_back(run(d, w, others - 8, 8, 8, 32768, 0));
  }

  std::printf("\n| configuration | streamed GB/s | prefetch issued GB/s | x burst med / p90 ns | chained L2 hit med / p90 ns |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const Row& r : rows)
    std::printf("| %s | %.0f | %.0f | %.0f / %.0f | %.0f / %.0f |\n", r.what.c_str(), r.stream_gbs, r.pf_gbs, r.burst.med,
                r.burst.p90, r.chain.med, r.chain.p90);

  // Do bulk prefetches land in L2? 40 MB read by every SM: cold, warm, and right after 8 / 16 SMs issued
  // bulk prefetches of it (the read launched behind the prefetch kernel, which ends once it has issued them).
  const size_t R = size_t(40) << 20;
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  auto timed_read = [&](const char* region) {
    CK(cudaEventRecord(e0, d.s[0]));
    read_once<<<d.sms * 4, 512, 0, d.s[0]>>>(reinterpret_cast<const uint4*>(region), R / 16, d.sink);
    CK(cudaGetLastError());
    CK(cudaEventRecord(e1, d.s[0]));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    return ms * 1000.0f;
  };
  auto flush = [&] {  // read 256 MB elsewhere: evicts the 32 MB region
    read_once<<<d.sms * 4, 512, 0, d.s[0]>>>(reinterpret_cast<const uint4*>(d.big + (size_t(1) << 30)),
                                              (size_t(256) << 20) / 16, d.sink);
    CK(cudaGetLastError());
  };
  std::printf("\n40 MB read by every SM (µs, 3 runs each):\n");
  for (int rep = 0; rep < 3; ++rep) {
    flush();
    const float cold = timed_read(d.big);
    const float warm = timed_read(d.big);
    float after_pf[2], after_wait[2];
    for (int k = 0; k < 2; ++k) {
      const int pf_sms = k ? 16 : 8;
      flush();
      prefetch_once<<<pf_sms, 32, 0, d.s[0]>>>(d.big, R, 65536);
      CK(cudaGetLastError());
      after_pf[k] = timed_read(d.big);  // right behind the prefetches
      flush();
      prefetch_once<<<pf_sms, 32, 0, d.s[0]>>>(d.big, R, 65536);
      CK(cudaGetLastError());
      CK(cudaStreamSynchronize(d.s[0]));
      usleep(1000);  // then 1 ms later
      after_wait[k] = timed_read(d.big);
    }
    std::printf("  cold %.1f | warm (read again) %.1f | right after 8 / 16 SMs' bulk L2 prefetch %.1f / %.1f | 1 ms after "
                "%.1f / %.1f\n", cold, warm, after_pf[0], after_pf[1], after_wait[0], after_wait[1]);
  }
  CK(cudaDeviceSynchronize());
  return 0;
}

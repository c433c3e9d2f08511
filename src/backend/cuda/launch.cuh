// Kernel launches with programmatic dependent launch (PDL, sm_90): a kernel may be scheduled while the
// previous one in the stream is still finishing; it runs its independent prologue (e.g. prefetching
// weights, which no earlier kernel writes) and then waits in pdl_wait() until the previous grid has
// completed and its memory is visible. This hides most of the gap between consecutive kernels of the
// decode step, in eager mode and inside CUDA graphs alike.
// Rule for every kernel launched this way: nothing written by an earlier kernel is read, and nothing an
// earlier kernel may still read is written, before pdl_wait().
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "backend/cuda/cuda_util.cuh"

namespace lowbit::cuda {

// On by default; LOWBIT_PDL=0 turns it off (for A/B measurements and debugging).
bool pdl_enabled();

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// pdl_wait() for a whole block: every thread waits (one_warp false), or warp 0 waits and the others meet it
// at a barrier (griddepcontrol.wait makes the previous grid's memory visible to this grid, and the barrier
// orders the other warps after warp 0's wait). Contains __syncthreads() where one_warp: block-uniform only.
__device__ __forceinline__ void pdl_wait_block(bool one_warp) {
  if (one_warp) {
    if (threadIdx.x < 32) pdl_wait();
    __syncthreads();
  } else {
    pdl_wait();
  }
}
// Lets the next kernel in the stream be scheduled now (it still waits for this grid in pdl_wait()).
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// %globaltimer (ns), for the timeline stamps of the stream GEMV and decode attention kernels (gemv.cuh).
__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}

// A block's first timeline stamps: [0] its entry, [6] its multiprocessor + 1 (blocks of one kernel that
// shared a multiprocessor show in the timeline).
__device__ __forceinline__ void stamp_entry(unsigned long long* stamps) {
  unsigned sm;
  asm volatile("mov.u32 %0, %smid;" : "=r"(sm));
  stamps[0] = global_ns();
  stamps[6] = sm + 1ull;
}

template <typename... P, typename... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  if (pdl_enabled()) {
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  LB_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...));
}

}  // namespace lowbit::cuda

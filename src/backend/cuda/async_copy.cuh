// cp.async (global -> shared, 16 bytes, bypassing L1) and its group bookkeeping, shared by the stream GEMV
// ring and the decode attention's K/V tiles.
#pragma once

#include <cstdint>

namespace lowbit::cuda {

__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most n (0..2) of this thread's cp.async groups are pending.
__device__ __forceinline__ void cp_async_wait(int n) {
  if (n >= 2) asm volatile("cp.async.wait_group 2;" ::: "memory");
  else if (n == 1) asm volatile("cp.async.wait_group 1;" ::: "memory");
  else asm volatile("cp.async.wait_group 0;" ::: "memory");
}

}  // namespace lowbit::cuda

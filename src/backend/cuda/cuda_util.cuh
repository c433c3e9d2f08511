// CUDA error checking (file:line in every message) and small RAII helpers for the runner.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdlib>
#include <string>
#include <utility>

#include "util/error.h"

#define LB_CUDA_CHECK(expr)                                                                          \
  do {                                                                                               \
    cudaError_t lb_err_ = (expr);                                                                    \
    if (lb_err_ != cudaSuccess)                                                                      \
      ::lowbit::fail("CUDA error ", cudaGetErrorName(lb_err_), " (", cudaGetErrorString(lb_err_),   \
                     ") at ", __FILE__, ":", __LINE__, ": ", #expr);                                 \
  } while (0)

// After every launch: a bad configuration is reported here, not at some later call.
#define LB_CUDA_LAUNCH_CHECK() LB_CUDA_CHECK(cudaGetLastError())

namespace lowbit::cuda {

// A two-valued A/B knob from the environment: unset or empty gives `dflt`, the value `on` true, `off`
// false; anything else is an Error naming the variable and both values. Callers read it once (a static).
inline bool env_switch(const char* name, const char* off, const char* on, bool dflt) {
  const char* e = std::getenv(name);
  if (!e || !*e) return dflt;
  const std::string v(e);
  LB_CHECK(v == on || v == off, name, "='", v, "': expected ", off, " or ", on);
  return v == on;
}

// Owning device allocation (cudaMalloc; never managed memory).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { alloc(bytes); }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  void alloc(size_t bytes) {
    reset();
    if (bytes) {
      cudaError_t e = cudaMalloc(&p_, bytes);
      if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        ::lowbit::fail("cudaMalloc of ", bytes / 1048576.0, " MiB failed (", cudaGetErrorString(e), "); ",
                       free_b / 1048576.0, " MiB free of ", total_b / 1048576.0, " MiB");
      }
    }
    n_ = bytes;
  }
  void reset() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  template <typename T = void>
  T* get() const { return static_cast<T*>(p_); }
  size_t size() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace lowbit::cuda

// CUDA error checking (file:line in every message) and small RAII helpers for the runner.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdlib>
#include <initializer_list>
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

// The A/B knobs (LOWBIT_* variables read by the CUDA backend) are read on first use and again after
// the epoch moves (cuda_reread_env_knobs: `lowbit bench --settings` changes them between measurements of
// one loaded model). One host thread launches the work, as everywhere in the backend.
inline unsigned& env_knob_epoch() {
  static unsigned e = 1;
  return e;
}
template <typename T>
class EnvKnob {
 public:
  explicit EnvKnob(T (*read)()) : read_(read) {}
  T get() {
    if (epoch_ != env_knob_epoch()) {
      v_ = read_();
      epoch_ = env_knob_epoch();
    }
    return v_;
  }

 private:
  T (*read_)();
  T v_{};
  unsigned epoch_ = 0;
};

// An A/B knob's value from the environment: the index of its value in `values`; unset or empty gives
// `dflt`; anything else is an Error naming the variable and every value.
inline int env_choice(const char* name, std::initializer_list<const char*> values, int dflt) {
  const char* e = std::getenv(name);
  if (!e || !*e) return dflt;
  std::string expected;
  int i = 0;
  for (const char* v : values) {
    if (std::string(e) == v) return i;
    expected += (i++ ? ", " : "") + std::string(v);
  }
  fail(name, "='", e, "': expected one of ", expected);
}
// An integer one in [lo, hi]; unset or empty gives `dflt`.
inline int env_int(const char* name, int dflt, int lo, int hi) {
  const char* e = std::getenv(name);
  if (!e || !*e) return dflt;
  char* end = nullptr;
  const long v = std::strtol(e, &end, 10);
  LB_CHECK(end && *end == '\0' && v >= lo && v <= hi, name, "='", e, "': expected an integer in ", lo, "..", hi);
  return int(v);
}
// A real one in [lo, hi]; unset or empty gives `dflt`.
inline double env_double(const char* name, double dflt, double lo, double hi) {
  const char* e = std::getenv(name);
  if (!e || !*e) return dflt;
  char* end = nullptr;
  const double v = std::strtod(e, &end);
  LB_CHECK(end && *end == '\0' && v >= lo && v <= hi, name, "='", e, "': expected a number in ", lo, "..", hi);
  return v;
}
// A two-valued one: `on` true, `off` false.
inline bool env_switch(const char* name, const char* off, const char* on, bool dflt) {
  return env_choice(name, {off, on}, dflt ? 1 : 0) == 1;
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

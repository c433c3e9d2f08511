// CUDA tests that run a kernel under an A/B knob (LOWBIT_GEMV_*, LOWBIT_ATTN_*): ScopedKnobs sets them for a
// scope and gives every one back its earlier value (or its absence) at the scope's end, whatever fails
// inside, so that a device run may set a knob for the whole suite. The backend re-reads its knobs when
// env_knob_epoch() changes.
#pragma once

#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cuda/cuda_util.cuh"

namespace lowbit::cuda {

class ScopedKnobs {
 public:
  ScopedKnobs() = default;
  ScopedKnobs(const ScopedKnobs&) = delete;
  ScopedKnobs& operator=(const ScopedKnobs&) = delete;
  // value null: the knob unset (its default)
  void set(const char* name, const char* value) {
    bool known = false;
    for (const Saved& s : saved_) known = known || s.name == name;
    if (!known) {
      const char* was = std::getenv(name);
      saved_.push_back({name, was != nullptr, was ? was : ""});
    }
    put(name, value);
  }
  ~ScopedKnobs() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) put(it->name.c_str(), it->had ? it->value.c_str() : nullptr);
  }

 private:
  struct Saved {
    std::string name;
    bool had;
    std::string value;
  };
  static void put(const char* name, const char* value) {
    if (value) setenv(name, value, 1);
    else unsetenv(name);
    ++env_knob_epoch();
  }
  std::vector<Saved> saved_;
};

}  // namespace lowbit::cuda

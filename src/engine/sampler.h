// Next-token sampling: greedy (temperature 0), temperature, top-k, top-p; deterministic for a seed.
#pragma once
#include <cstdint>
#include <vector>

#include "util/rng.h"

namespace lowbit {

struct SamplerConfig {
  float temperature = 0.0f;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = no top-k cut
  float top_p = 1.0f;        // 1 = no nucleus cut
  uint64_t seed = 0;
  bool greedy() const { return temperature <= 0.0f; }
};

class Sampler {
 public:
  explicit Sampler(SamplerConfig cfg) : cfg_(cfg), rng_(cfg.seed) {}
  const SamplerConfig& config() const { return cfg_; }
  // Picks a token from logits[0..n). Ties in argmax go to the lowest id.
  int sample(const float* logits, int n);
  // The uniform draw for step `step` (counter-based, so a device sampler can reproduce it).
  static float uniform_for_step(uint64_t seed, uint64_t step);
  uint64_t step() const { return step_; }
  // Consumes this step's draw without sampling here (a device sampler drew it).
  void advance() { ++step_; }

 private:
  SamplerConfig cfg_;
  Rng rng_;
  uint64_t step_ = 0;
  std::vector<std::pair<float, int>> scratch_;
};

int argmax(const float* x, int n);

}  // namespace lowbit

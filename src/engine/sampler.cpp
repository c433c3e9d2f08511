#include "engine/sampler.h"

#include <algorithm>
#include <cmath>

#include "engine/runner.h"

namespace lowbit {

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

float Sampler::uniform_for_step(uint64_t seed, uint64_t step) {
  uint64_t s = seed ^ (step * 0xd1b54a32d192ed03ull);
  return float(splitmix64(s) >> 40) * (1.0f / 16777216.0f);  // 24 bits: exact in fp32, in [0, 1)
}

int Sampler::sample(const float* logits, int n) {
  const uint64_t step = step_++;
  if (cfg_.greedy()) return argmax(logits, n);
  // candidates sorted by logit (descending), cut to top-k
  scratch_.resize(size_t(n));
  for (int i = 0; i < n; ++i) scratch_[i] = {logits[i], i};
  const int k = (cfg_.top_k > 0 && cfg_.top_k < n) ? cfg_.top_k : n;
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  std::partial_sort(scratch_.begin(), scratch_.begin() + k, scratch_.end(), by_logit);
  // softmax with temperature over the k candidates
  const float inv_t = 1.0f / cfg_.temperature;
  const float mx = scratch_[0].first;
  double sum = 0.0;
  for (int i = 0; i < k; ++i) {
    scratch_[i].first = std::exp((scratch_[i].first - mx) * inv_t);
    sum += scratch_[i].first;
  }
  // nucleus: smallest prefix whose probability reaches top_p
  int keep = k;
  if (cfg_.top_p < 1.0f) {
    double acc = 0.0;
    for (int i = 0; i < k; ++i) {
      acc += scratch_[i].first / sum;
      if (acc >= cfg_.top_p) { keep = i + 1; break; }
    }
  }
  double total = 0.0;
  for (int i = 0; i < keep; ++i) total += scratch_[i].first;
  const double u = double(uniform_for_step(cfg_.seed, step)) * total;
  double acc = 0.0;
  for (int i = 0; i < keep; ++i) {
    acc += scratch_[i].first;
    if (u < acc) return scratch_[i].second;
  }
  return scratch_[keep - 1].second;
}

int Runner::forward_sample(const int* tokens, int n, int pos, Sampler& sampler) {
  const float* logits = forward(tokens, n, pos);
  return sampler.sample(logits, vocab_size());
}

}  // namespace lowbit

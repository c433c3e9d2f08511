// Deterministic random numbers (fixed seeds everywhere): splitmix64 seeding a xoshiro256** stream.
#pragma once
#include <cmath>
#include <cstdint>

namespace lowbit {

inline uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) {
    for (auto& x : s_) x = splitmix64(seed);
  }
  uint64_t next_u64() {
    uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0]; s_[3] ^= s_[1]; s_[1] ^= s_[2]; s_[0] ^= s_[3];
    s_[2] ^= t; s_[3] = rotl(s_[3], 45);
    return r;
  }
  uint32_t next_u32() { return uint32_t(next_u64() >> 32); }
  // uniform in [0, 1) with 24 random bits (exactly representable in fp32)
  float uniform() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }
  // standard normal (Box-Muller)
  float normal() {
    float u1 = uniform(), u2 = uniform();
    if (u1 < 1e-12f) u1 = 1e-12f;
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530717958647692f * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace lowbit

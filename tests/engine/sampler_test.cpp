#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "engine/sampler.h"

using namespace lowbit;

TEST(Sampler, GreedyIsArgmaxLowestIdOnTies) {
  Sampler s(SamplerConfig{});
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f};
  EXPECT_EQ(s.sample(l.data(), int(l.size())), 1);
  EXPECT_EQ(argmax(l.data(), int(l.size())), 1);
}

TEST(Sampler, TopKOneIsGreedy) {
  std::vector<float> l = {0.5f, 0.2f, 2.5f, 2.4f, -3.0f};
  Sampler s(SamplerConfig{1.5f, 1, 1.0f, 7});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.sample(l.data(), int(l.size())), 2);
}

TEST(Sampler, SameSeedSameSequence) {
  std::vector<float> l(100);
  for (int i = 0; i < 100; ++i) l[i] = std::sin(float(i)) * 2.0f;
  Sampler a(SamplerConfig{0.9f, 0, 0.95f, 123}), b(SamplerConfig{0.9f, 0, 0.95f, 123}),
      c(SamplerConfig{0.9f, 0, 0.95f, 124});
  int differ = 0;
  for (int i = 0; i < 200; ++i) {
    const int x = a.sample(l.data(), 100), y = b.sample(l.data(), 100), z = c.sample(l.data(), 100);
    EXPECT_EQ(x, y);
    differ += x != z;
  }
  EXPECT_GT(differ, 0);  // another seed gives another sequence
}

// Frequencies over many draws match softmax(l / T) within 5 standard errors per token.
TEST(Sampler, TemperatureFollowsSoftmax) {
  const std::vector<float> l = {1.0f, 0.0f, 2.0f, -1.0f};
  const float T = 0.7f;
  std::vector<double> p(4);
  double z = 0;
  for (int i = 0; i < 4; ++i) z += p[i] = std::exp(l[i] / T);
  for (auto& v : p) v /= z;
  Sampler s(SamplerConfig{T, 0, 1.0f, 99});
  const int n = 40000;
  std::vector<int> count(4, 0);
  for (int i = 0; i < n; ++i) count[s.sample(l.data(), 4)]++;
  for (int i = 0; i < 4; ++i) {
    const double se = std::sqrt(p[i] * (1 - p[i]) / n);
    EXPECT_NEAR(double(count[i]) / n, p[i], 5 * se) << "token " << i;
  }
}

// top-p keeps the smallest set of most likely tokens whose mass reaches p: here {2, 0}.
TEST(Sampler, TopPKeepsTheNucleus) {
  const std::vector<float> l = {2.0f, -4.0f, 3.0f, -4.0f, -5.0f};
  Sampler s(SamplerConfig{1.0f, 0, 0.9f, 5});
  std::map<int, int> seen;
  for (int i = 0; i < 2000; ++i) seen[s.sample(l.data(), 5)]++;
  for (auto& [tok, c] : seen) EXPECT_TRUE(tok == 0 || tok == 2) << "token " << tok << " drawn " << c << " times";
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[2], seen[0]);
}

TEST(Sampler, UniformForStepIsInUnitInterval) {
  for (uint64_t st = 0; st < 1000; ++st) {
    const float u = Sampler::uniform_for_step(42, st);
    EXPECT_GE(u, 0.0f);
    EXPECT_LT(u, 1.0f);
  }
}

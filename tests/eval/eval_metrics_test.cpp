// Evaluation arithmetic on logits small enough to compute by hand: KL, perplexity, top-1, the window plan,
// and evaluate_quality's plumbing through a scripted runner.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/runner.h"
#include "eval/quality.h"
#include "util/error.h"
#include "util/rng.h"

namespace lowbit {
namespace {

// Closed form of KL(P || Q) = sum p log(p / q) for explicit probability vectors.
double kl_closed_form(const std::vector<double>& p, const std::vector<double>& q) {
  double s = 0.0;
  for (size_t i = 0; i < p.size(); ++i) s += p[i] * std::log(p[i] / q[i]);
  return s;
}

TEST(EvalMetrics, KlOfTwoTokenDistributionsByHand) {
  // a = (0, ln 2): P = (1/3, 2/3); b = (0, 0): Q = (1/2, 1/2)
  const float a[2] = {0.0f, float(std::log(2.0))}, b[2] = {0.0f, 0.0f};
  const double p1 = 1.0 / (1.0 + std::exp(double(a[1])));  // 1/3 up to the float rounding of ln 2
  const double want = kl_closed_form({p1, 1.0 - p1}, {0.5, 0.5});
  EXPECT_NEAR(kl_from_logits(a, b, 2), want, 1e-15);
  // and the textbook value with exact thirds, within the float rounding of ln 2 (|d KL / d a1| < 1)
  EXPECT_NEAR(kl_from_logits(a, b, 2), (1.0 / 3) * std::log(2.0 / 3) + (2.0 / 3) * std::log(4.0 / 3), 1e-7);
}

TEST(EvalMetrics, KlOfIdenticalLogitsIsExactlyZero) {
  Rng rng(3);
  std::vector<float> a(49152);
  for (auto& x : a) x = rng.normal() * 4.0f;
  EXPECT_EQ(kl_from_logits(a.data(), a.data(), int(a.size())), 0.0);
}

TEST(EvalMetrics, KlIsShiftInvariantAndAsymmetric) {
  Rng rng(5);
  std::vector<float> a(1000), b(1000), shifted(1000);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = rng.normal();
    b[i] = rng.normal();
    shifted[i] = b[i] + 7.0f;  // exact in fp32 at these magnitudes? not always: compare through logsumexp below
  }
  // softmax ignores a constant shift: the only difference is fp32 rounding of b + 7 (<= 2^-21 per logit)
  EXPECT_NEAR(kl_from_logits(a.data(), shifted.data(), 1000), kl_from_logits(a.data(), b.data(), 1000), 1e-5);
  std::vector<double> p(1000), q(1000);
  const double la = logsumexp(a.data(), 1000), lb = logsumexp(b.data(), 1000);
  for (size_t i = 0; i < a.size(); ++i) {
    p[i] = std::exp(a[i] - la);
    q[i] = std::exp(b[i] - lb);
  }
  EXPECT_NEAR(kl_from_logits(a.data(), b.data(), 1000), kl_closed_form(p, q), 1e-12);
  EXPECT_NEAR(kl_from_logits(b.data(), a.data(), 1000), kl_closed_form(q, p), 1e-12);
  EXPECT_GT(std::fabs(kl_closed_form(p, q) - kl_closed_form(q, p)), 1e-3);  // KL is not symmetric
}

TEST(EvalMetrics, LogSumExpOfLargeLogits) {
  const float x[3] = {1000.0f, 1000.0f, -1000.0f};  // exp(1000) overflows without the max shift
  EXPECT_NEAR(logsumexp(x, 3), 1000.0 + std::log(2.0), 1e-12);
}

TEST(EvalMetrics, PerplexityAndTopOneOfAReferenceWindowByHand) {
  // V = 3, two input positions, both scored. Row 0 predicts token 2, row 1 predicts token 0.
  const float ref[6] = {0.0f, 0.0f, float(std::log(2.0)),   // P = (1/4, 1/4, 1/2)
                        float(std::log(3.0)), 0.0f, 0.0f};  // P = (3/5, 1/5, 1/5)
  ReferenceWindow w;
  w.set(ref, 2, 3, {0, 1}, {2, 0});
  QualityMetrics self;
  w.score(ref, self);
  EXPECT_EQ(self.positions, 2);
  EXPECT_EQ(self.kl_sum, 0.0);
  EXPECT_EQ(self.top1(), 1.0);
  // perplexity = exp(-(log 1/2 + log 3/5) / 2) = sqrt(2 * 5/3)
  EXPECT_NEAR(self.perplexity(), std::sqrt(10.0 / 3.0), 1e-6);

  // a configuration that is uniform on row 0 and prefers token 1 on row 1
  const float q[6] = {0.0f, 0.0f, 0.0f, 0.0f, float(std::log(4.0)), 0.0f};  // (1/3,1/3,1/3), (1/6,2/3,1/6)
  QualityMetrics m;
  w.score(q, m);
  EXPECT_NEAR(m.perplexity(), std::sqrt(3.0 * 6.0), 1e-5);  // q(2) = 1/3 on row 0, q(0) = 1/6 on row 1
  // argmax of the uniform row is token 0 (lowest id); the reference's is 2; row 1: 1 vs 0: no agreement
  EXPECT_EQ(m.top1_agree, 0);
  const double kl0 = kl_closed_form({0.25, 0.25, 0.5}, {1.0 / 3, 1.0 / 3, 1.0 / 3});
  const double kl1 = kl_closed_form({0.6, 0.2, 0.2}, {1.0 / 6, 4.0 / 6, 1.0 / 6});
  EXPECT_NEAR(m.mean_kl(), (kl0 + kl1) / 2, 1e-6);
  EXPECT_NEAR(m.kl_max, std::max(kl0, kl1), 1e-6);
}

TEST(EvalWindows, NonOverlappingWithoutBos) {
  // 10 tokens, windows of 4: [0,4) scores 1..3, [4,8) scores 5..7, [8,10) scores 9
  const auto w = plan_windows(10, 4, 0, /*bos=*/false);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].begin, 0);
  EXPECT_EQ(w[0].end, 4);
  EXPECT_EQ(w[0].score_begin, 1);
  EXPECT_EQ(w[1].begin, 4);
  EXPECT_EQ(w[1].end, 8);
  EXPECT_EQ(w[1].score_begin, 5);
  EXPECT_EQ(w[2].begin, 8);
  EXPECT_EQ(w[2].end, 10);
  EXPECT_EQ(w[2].score_begin, 9);
}

TEST(EvalWindows, NonOverlappingWithBos) {
  // ctx 4 with a BOS holds 3 text tokens; every token is scored (the BOS predicts the first)
  const auto w = plan_windows(7, 4, 0, /*bos=*/true);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].score_begin, 0);
  EXPECT_EQ(w[1].begin, 3);
  EXPECT_EQ(w[1].score_begin, 3);
  EXPECT_EQ(w[2].begin, 6);
  EXPECT_EQ(w[2].end, 7);
}

TEST(EvalWindows, StridedWindowsScoreEachTokenOnceAfterWarmUp) {
  // windows of 8 every 4 tokens: later windows score only their last 4 tokens (4 tokens of warm-up)
  const auto w = plan_windows(20, 8, 4, /*bos=*/false);
  ASSERT_EQ(w.size(), 4u);
  int64_t scored = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(w[i].begin, int64_t(4 * i));
    if (i > 0) {
      EXPECT_EQ(w[i].score_begin, w[i - 1].end);
      EXPECT_GE(w[i].score_begin - w[i].begin, 4);
    }
    scored += w[i].end - w[i].score_begin;
  }
  EXPECT_EQ(w.back().end, 20);
  EXPECT_EQ(scored, 19);  // every token but the first
  EXPECT_EQ(plan_windows(20, 8, 4, false, 2).size(), 2u);
}

TEST(EvalWindows, BadOptionsAreErrors) {
  EXPECT_THROW(plan_windows(100, 1, 0, false), Error);
  EXPECT_THROW(plan_windows(100, 2, 0, true), Error);
  EXPECT_THROW(plan_windows(100, 8, 9, false), Error);
  EXPECT_THROW(plan_windows(100, 8, -1, false), Error);
  EXPECT_TRUE(plan_windows(1, 8, 0, false).empty());  // one token: nothing to predict
}

// A runner whose logits at input position i are `peak` at token (tokens[i] + shift) % V and 0 elsewhere.
class ScriptedRunner final : public Runner {
 public:
  ScriptedRunner(int V, float peak, int shift) : V_(V), peak_(peak), shift_(shift) {}
  std::string device() const override { return "scripted"; }
  int max_seq_len() const override { return 64; }
  int vocab_size() const override { return V_; }
  const float* forward(const int*, int, int) override { return nullptr; }
  void forward_all(const int* tokens, int n, int pos, float* out) override {
    calls.push_back(std::vector<int>(tokens, tokens + n));
    positions.push_back(pos);
    for (int i = 0; i < n; ++i)
      for (int v = 0; v < V_; ++v) out[size_t(i) * V_ + v] = v == (tokens[i] + shift_) % V_ ? peak_ : 0.0f;
  }
  std::vector<std::vector<int>> calls;
  std::vector<int> positions;

 private:
  int V_;
  float peak_;
  int shift_;
};

TEST(EvalQuality, ScriptedRunnersByHand) {
  const int V = 5;
  std::vector<int> text(23);
  for (size_t k = 0; k < text.size(); ++k) text[k] = int(k % 4);  // 0 1 2 3 0 1 2 3 ...: next = (cur + 1) % 4
  // with V = 5, (cur + 1) % 5 is the next token except after 3 (predicts 4, the text has 0)
  ScriptedRunner ref(V, 2.0f, 1), softer(V, 1.0f, 1), wrong(V, 2.0f, 2);
  QualityOptions o;
  o.ctx = 8;
  o.bos_id = 4;  // BOS = 4 predicts (4 + 1) % 5 = 0 = text[0]
  const QualityResult r = evaluate_quality(ref, {&softer, &wrong}, text, o);
  // 23 tokens, 7 text tokens per window: 4 windows, every token scored
  ASSERT_EQ(r.windows.size(), 4u);
  EXPECT_EQ(r.reference.positions, 23);
  ASSERT_EQ(ref.calls.size(), 4u);
  EXPECT_EQ(ref.calls[1], (std::vector<int>{4, 3, 0, 1, 2, 3, 0, 1}));  // BOS + text[7, 14)
  for (int p : ref.positions) EXPECT_EQ(p, 0);
  EXPECT_EQ(softer.calls, ref.calls);

  // The reference puts p = e^2 / (e^2 + 4) on its peak and 1 / (e^2 + 4) on each other token. Misses:
  // the first target of windows 2..4 (text[7] = 3, text[14] = 2, text[21] = 1) is predicted by the BOS,
  // whose peak is 0; and a target after a 3 (k % 4 == 0: k = 4, 8, 12, 16, 20) gets the peak at 4, not 0.
  // 8 misses, 15 hits (text[0] from the BOS included).
  const double e2 = std::exp(2.0), p = e2 / (e2 + 4.0), p_off = 1.0 / (e2 + 4.0);
  EXPECT_NEAR(r.reference.perplexity(), std::exp(-(15 * std::log(p) + 8 * std::log(p_off)) / 23), 1e-5);
  EXPECT_EQ(r.reference.kl_sum, 0.0);

  // softer: peak 1 at the same token; same KL at every position; top-1 always agrees
  const double e1 = std::exp(1.0), q = e1 / (e1 + 4.0);
  const double kl = kl_closed_form({p, p_off, p_off, p_off, p_off}, {q, (1 - q) / 4, (1 - q) / 4, (1 - q) / 4, (1 - q) / 4});
  EXPECT_NEAR(r.configs[0].mean_kl(), kl, 1e-6);
  EXPECT_EQ(r.configs[0].top1(), 1.0);
  // wrong: peaks one token later: never agrees
  EXPECT_EQ(r.configs[1].top1_agree, 0);
  EXPECT_TRUE(r.errors[0].empty() && r.errors[1].empty());
}

class ThrowingRunner final : public Runner {
 public:
  std::string device() const override { return "throwing"; }
  int max_seq_len() const override { return 64; }
  int vocab_size() const override { return 5; }
  const float* forward(const int*, int, int) override { return nullptr; }
  void forward_all(const int*, int, int, float*) override { fail("this configuration cannot run"); }
};

TEST(EvalQuality, AFailingConfigurationKeepsItsErrorAndTheOthersGoOn) {
  std::vector<int> text(20, 1);
  ScriptedRunner ref(5, 2.0f, 1), same(5, 2.0f, 1);
  ThrowingRunner bad;
  QualityOptions o;
  o.ctx = 8;
  const QualityResult r = evaluate_quality(ref, {&bad, &same}, text, o);
  EXPECT_NE(r.errors[0].find("cannot run"), std::string::npos);
  EXPECT_TRUE(r.errors[1].empty());
  EXPECT_EQ(r.configs[1].positions, r.reference.positions);
  EXPECT_EQ(r.configs[1].kl_sum, 0.0);
}

TEST(EvalQuality, TooShortTextIsAnError) {
  ScriptedRunner ref(5, 2.0f, 1);
  QualityOptions o;
  o.ctx = 8;
  EXPECT_THROW(evaluate_quality(ref, {}, std::vector<int>{1}, o), Error);
  o.ctx = 128;  // more than the runner's 64 positions
  EXPECT_THROW(evaluate_quality(ref, {}, std::vector<int>(300, 1), o), Error);
}

}  // namespace
}  // namespace lowbit

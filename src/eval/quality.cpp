#include "eval/quality.h"

#include <algorithm>
#include <cmath>

#include "engine/sampler.h"
#include "util/error.h"

namespace lowbit {

double logsumexp(const float* logits, int V) {
  float mx = -INFINITY;
  for (int v = 0; v < V; ++v) mx = std::max(mx, logits[v]);
  if (!std::isfinite(mx)) return double(mx);  // all -inf, or +inf / NaN present: nothing finite to shift by
  double s = 0.0;
  for (int v = 0; v < V; ++v) s += std::exp(double(logits[v]) - double(mx));
  return double(mx) + std::log(s);
}

double kl_from_logits(const float* a, const float* b, int V) {
  const double la = logsumexp(a, V), lb = logsumexp(b, V);
  double kl = 0.0;
  for (int v = 0; v < V; ++v) {
    const double p = std::exp(double(a[v]) - la);
    // (a - b) first: identical logits contribute exactly 0
    kl += p * ((double(a[v]) - double(b[v])) - (la - lb));
  }
  return kl;
}

std::vector<EvalWindow> plan_windows(int64_t n_tokens, int ctx, int stride, bool bos, int max_windows) {
  const int64_t ctx_text = ctx - (bos ? 1 : 0);
  LB_CHECK(ctx_text >= 2, "--ctx ", ctx, ": a window needs at least 2 text tokens");
  LB_CHECK(stride >= 0 && stride <= ctx_text, "--stride ", stride, " must be in [1, ", ctx_text,
           "] (the text tokens of a window), or 0 for non-overlapping windows");
  LB_CHECK(max_windows >= 0, "--windows must be >= 0");
  const int64_t step = stride > 0 ? stride : ctx_text;
  std::vector<EvalWindow> out;
  int64_t scored_to = bos ? 0 : 1;  // text[0] has no predictor without a BOS
  for (int64_t begin = 0; scored_to < n_tokens; begin += step) {
    EvalWindow w;
    w.begin = begin;
    w.end = std::min(n_tokens, begin + ctx_text);
    w.score_begin = std::max(scored_to, begin + (bos ? 0 : 1));
    if (w.score_begin < w.end) out.push_back(w);
    scored_to = std::max(scored_to, w.end);
    if (max_windows > 0 && int(out.size()) == max_windows) break;
  }
  return out;
}

double QualityMetrics::perplexity() const { return positions ? std::exp(nll_sum / double(positions)) : NAN; }
double QualityMetrics::mean_kl() const { return positions ? kl_sum / double(positions) : NAN; }
double QualityMetrics::top1() const { return positions ? double(top1_agree) / double(positions) : NAN; }
void QualityMetrics::add(const QualityMetrics& o) {
  positions += o.positions;
  nll_sum += o.nll_sum;
  kl_sum += o.kl_sum;
  kl_max = std::max(kl_max, o.kl_max);
  top1_agree += o.top1_agree;
}

void ReferenceWindow::set(const float* logits, int n_rows, int V, const std::vector<int>& rows,
                          const std::vector<int>& targets) {
  LB_CHECK(rows.size() == targets.size(), "reference window: ", rows.size(), " rows but ", targets.size(), " targets");
  V_ = V;
  rows_ = rows;
  targets_ = targets;
  const size_t S = rows.size(), Vs = size_t(V);
  logits_.resize(S * Vs);
  p_.resize(S * Vs);
  lse_.resize(S);
  argmax_.resize(S);
  for (size_t j = 0; j < S; ++j) {
    LB_CHECK(rows[j] >= 0 && rows[j] < n_rows, "reference window: row ", rows[j], " out of [0, ", n_rows, ")");
    LB_CHECK(targets[j] >= 0 && targets[j] < V, "reference window: target ", targets[j], " out of [0, ", V, ")");
  }
#pragma omp parallel for schedule(static)
  for (size_t j = 0; j < S; ++j) {
    const float* src = logits + size_t(rows[j]) * Vs;
    std::copy(src, src + Vs, logits_.begin() + j * Vs);
    lse_[j] = logsumexp(src, V);
    for (size_t v = 0; v < Vs; ++v) p_[j * Vs + v] = float(std::exp(double(src[v]) - lse_[j]));
    argmax_[j] = argmax(src, V);
  }
}

void ReferenceWindow::score(const float* logits, QualityMetrics& m) const {
  const int S = int(rows_.size());
  const size_t Vs = size_t(V_);
  double nll = 0.0, kl = 0.0, kl_max = 0.0;
  int64_t agree = 0;
#pragma omp parallel for schedule(static) reduction(+ : nll, kl, agree) reduction(max : kl_max)
  for (int j = 0; j < S; ++j) {
    const float* q = logits + size_t(rows_[j]) * Vs;
    const float* a = logits_.data() + size_t(j) * Vs;
    const float* p = p_.data() + size_t(j) * Vs;
    const double lq = logsumexp(q, V_);
    const double shift = lse_[size_t(j)] - lq;
    double k = 0.0;
    for (size_t v = 0; v < Vs; ++v) k += double(p[v]) * ((double(a[v]) - double(q[v])) - shift);
    kl += k;
    kl_max = std::max(kl_max, k);
    nll += lq - double(q[targets_[size_t(j)]]);
    agree += argmax(q, V_) == argmax_[size_t(j)] ? 1 : 0;
  }
  m.positions += S;
  m.nll_sum += nll;
  m.kl_sum += kl;
  m.kl_max = std::max(m.kl_max, kl_max);
  m.top1_agree += agree;
}

QualityResult evaluate_quality(Runner& reference, const std::vector<Runner*>& configs,
                               const std::vector<int>& text_tokens, const QualityOptions& opt) {
  const bool bos = opt.bos_id >= 0;
  QualityResult r;
  r.windows = plan_windows(int64_t(text_tokens.size()), opt.ctx, opt.stride, bos, opt.max_windows);
  LB_CHECK(!r.windows.empty(), "the text has too few tokens (", text_tokens.size(), ") for one evaluation window");
  const int V = reference.vocab_size();
  for (Runner* c : configs) {
    LB_CHECK(c->vocab_size() == V, "configuration vocabulary ", c->vocab_size(), " differs from the reference's ", V);
    LB_CHECK(c->max_seq_len() >= opt.ctx, "a configuration's KV cache holds ", c->max_seq_len(),
             " positions, fewer than --ctx ", opt.ctx);
  }
  LB_CHECK(reference.max_seq_len() >= opt.ctx, "the reference's KV cache holds ", reference.max_seq_len(),
           " positions, fewer than --ctx ", opt.ctx);
  r.configs.assign(configs.size(), {});
  r.errors.assign(configs.size(), "");

  std::vector<float> logits(size_t(opt.ctx) * size_t(V));
  std::vector<int> input, rows, targets;
  ReferenceWindow ref;
  const int64_t total = int64_t(r.windows.size()) * int64_t(1 + configs.size());
  int64_t done = 0;
  for (size_t wi = 0; wi < r.windows.size(); ++wi) {
    const EvalWindow& w = r.windows[wi];
    input.clear();
    if (bos) input.push_back(opt.bos_id);
    input.insert(input.end(), text_tokens.begin() + w.begin, text_tokens.begin() + w.end);
    rows.clear();
    targets.clear();
    const int64_t offset = bos ? 1 : 0;  // input position of text[begin]
    for (int64_t k = w.score_begin; k < w.end; ++k) {
      rows.push_back(int(k - w.begin + offset - 1));  // the row that predicts text[k]
      targets.push_back(text_tokens[size_t(k)]);
    }
    const int n = int(input.size());
    reference.forward_all(input.data(), n, 0, logits.data());
    ref.set(logits.data(), n, V, rows, targets);
    ref.score(logits.data(), r.reference);
    if (opt.progress) opt.progress(++done, total, "window " + std::to_string(wi + 1) + " reference");
    for (size_t c = 0; c < configs.size(); ++c) {
      if (r.errors[c].empty()) {
        try {
          configs[c]->forward_all(input.data(), n, 0, logits.data());
          ref.score(logits.data(), r.configs[c]);
        } catch (const Error& e) {
          r.errors[c] = e.what();
        }
      }
      if (opt.progress) opt.progress(++done, total, "window " + std::to_string(wi + 1) + " config " + std::to_string(c + 1));
    }
  }
  return r;
}

}  // namespace lowbit

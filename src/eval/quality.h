// Quality of a model configuration measured against a reference on a text (docs/quality.md):
//   perplexity  exp(mean over scored positions of -log q(target))         of the evaluated model
//   KL          mean over scored positions of KL(P_ref || P_q) = sum_v p_v (log p_v - log q_v)   (nats)
//   top-1       share of scored positions where argmax q == argmax p (ties: the lowest id)
// The text is cut into windows of ctx positions; each window is run from position 0 (a fresh KV cache)
// through the reference once, and its logits are reused for every configuration.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/runner.h"

namespace lowbit {

// ---- per-position arithmetic ---------------------------------------------------------------------

// log(sum_v exp(logits[v])), max-shifted, accumulated in double.
double logsumexp(const float* logits, int V);
// KL(P || Q) in nats for P = softmax(a), Q = softmax(b), double arithmetic:
// sum_v p_v * ((a_v - b_v) - (lse(a) - lse(b))). Exactly 0 when a == b.
double kl_from_logits(const float* a, const float* b, int V);

// ---- windows ---------------------------------------------------------------------------------------

// A window's input is [BOS] + text[begin, end); the targets text[score_begin, end) are scored in it
// (each target predicted from everything before it in the window).
struct EvalWindow {
  int64_t begin = 0, end = 0;
  int64_t score_begin = 0;
};

// Windows over n text tokens. A window holds ctx positions (its BOS included when bos is true), so
// ctx_text = ctx - bos text tokens; windows start every `stride` text tokens (0 = ctx_text:
// non-overlapping). A text token is scored at most once: by the first window that holds it with something
// before it (the BOS or an earlier token). So without a BOS the first token of each non-overlapping window
// is context only; with stride < ctx_text every token after text[0] is scored, and the first
// ctx_text - stride tokens of each later window are warm-up context (already scored, each scored token
// sees at least ctx_text - stride tokens before it). The last window may be shorter. max_windows > 0
// keeps that many windows.
std::vector<EvalWindow> plan_windows(int64_t n_tokens, int ctx, int stride, bool bos, int max_windows = 0);

// ---- metrics -----------------------------------------------------------------------------------------

struct QualityMetrics {
  int64_t positions = 0;    // scored positions
  double nll_sum = 0.0;     // sum of -log q(target)
  double kl_sum = 0.0;      // sum of KL(P_ref || P_q)
  double kl_max = 0.0;      // largest per-position KL
  int64_t top1_agree = 0;   // positions where the argmaxes agree

  double perplexity() const;
  double mean_kl() const;
  double top1() const;
  void add(const QualityMetrics& o);
};

// The reference's logits of one window at the scored positions (and their softmax), kept so that every
// configuration is compared without running the reference again.
class ReferenceWindow {
 public:
  // logits: [n_rows, V], row i = the logits after input position i. rows[j] is the j-th scored row and
  // targets[j] the token it must predict.
  void set(const float* logits, int n_rows, int V, const std::vector<int>& rows, const std::vector<int>& targets);
  // Adds a configuration's metrics on this window (logits in the same layout as set()) to m.
  void score(const float* logits, QualityMetrics& m) const;
  int scored() const { return int(rows_.size()); }

 private:
  int V_ = 0;
  std::vector<int> rows_, targets_, argmax_;  // [scored]
  std::vector<float> logits_, p_;             // [scored, V]: reference logits and softmax
  std::vector<double> lse_;                   // [scored]
};

// ---- a whole evaluation -----------------------------------------------------------------------------

struct QualityOptions {
  int ctx = 512;          // positions per window (BOS included)
  int stride = 0;         // text tokens between window starts; 0 = non-overlapping
  int max_windows = 0;    // 0 = the whole text
  int bos_id = -1;        // < 0: windows start without BOS
  // Called after every forward pass: (done, total, what).
  std::function<void(int64_t, int64_t, const std::string&)> progress;
};

struct QualityResult {
  std::vector<EvalWindow> windows;
  QualityMetrics reference;                // the reference against itself (its perplexity; KL 0, top-1 1)
  std::vector<QualityMetrics> configs;     // one per configuration runner
  std::vector<std::string> errors;         // per configuration: "" or the error that stopped it
};

// Runs every window through the reference and then through each configuration. A configuration that
// throws is stopped and its error kept (the others go on); the reference throwing is an Error. Every
// runner must hold at least ctx positions.
QualityResult evaluate_quality(Runner& reference, const std::vector<Runner*>& configs,
                               const std::vector<int>& text_tokens, const QualityOptions& opt);

}  // namespace lowbit

#include "engine/generate.h"

#include <algorithm>
#include <cstdio>

#include "util/error.h"
#include "util/timer.h"

namespace lowbit {

std::string GenerationStats::summary() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "prompt %d tokens, %d new | TTFT %.2f ms | TPOT %.3f ms | TPS %.2f tok/s | "
                "prefill %.1f tok/s | decode %.2f tok/s | latency %.3f s",
                prompt_tokens, new_tokens, ttft_s() * 1e3, tpot_s() * 1e3, tps(), prefill_tps(), decode_tps(),
                latency_s());
  return buf;
}

GenerateResult generate(Runner& runner, const std::vector<int>& prompt, int max_new, Sampler& sampler,
                        const std::vector<int>& stop_ids, const std::function<void(int)>& on_token,
                        bool ignore_stop) {
  GenerateResult r;
  LB_CHECK(!prompt.empty(), "generate: the prompt has no tokens");
  LB_CHECK(max_new >= 0, "generate: --max-new-tokens must be >= 0");
  const int n = int(prompt.size());
  LB_CHECK(n + max_new <= runner.max_seq_len() + 1, "generate: prompt (", n, " tokens) + ", max_new,
           " new tokens exceed the context of ", runner.max_seq_len(), " positions (raise --max-seq-len)");
  r.stats.prompt_tokens = n;
  if (max_new == 0) return r;
  auto is_stop = [&](int t) {
    return !ignore_stop && std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end();
  };

  double t0 = now_seconds();
  int tok = runner.forward_sample(prompt.data(), n, 0, sampler);
  runner.synchronize();
  double t1 = now_seconds();
  r.stats.prefill_s = t1 - t0;
  r.stats.new_tokens = 1;
  int pos = n;
  while (true) {
    if (is_stop(tok)) {
      r.stopped = true;
      break;
    }
    r.tokens.push_back(tok);
    if (on_token) on_token(tok);
    if (r.stats.new_tokens >= max_new) break;
    tok = runner.forward_sample(&tok, 1, pos++, sampler);
    ++r.stats.new_tokens;
  }
  runner.synchronize();
  r.stats.decode_s = now_seconds() - t1;
  return r;
}

}  // namespace lowbit

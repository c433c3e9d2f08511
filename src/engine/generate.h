// The generation loop: batched prefill of the prompt, then one token per step until a stop token or the
// limit; metrics as the survey defines them.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/runner.h"
#include "engine/sampler.h"

namespace lowbit {

// TTFT = prefill time (prompt forward + first token); TPOT = decode time / decode tokens;
// TPS = new tokens / (prefill + decode); prefill throughput = prompt tokens / prefill time;
// decode throughput = decode tokens / decode time; latency = prefill + decode.
struct GenerationStats {
  int prompt_tokens = 0;
  int new_tokens = 0;        // tokens produced (the first comes out of prefill)
  double prefill_s = 0.0;
  double decode_s = 0.0;
  int decode_tokens() const { return new_tokens > 0 ? new_tokens - 1 : 0; }
  double ttft_s() const { return prefill_s; }
  double latency_s() const { return prefill_s + decode_s; }
  double tps() const { return latency_s() > 0 ? new_tokens / latency_s() : 0.0; }
  double tpot_s() const { return decode_tokens() > 0 ? decode_s / decode_tokens() : 0.0; }
  double prefill_tps() const { return prefill_s > 0 ? prompt_tokens / prefill_s : 0.0; }
  double decode_tps() const { return decode_s > 0 ? decode_tokens() / decode_s : 0.0; }
  std::string summary() const;  // one line for stderr
};

struct GenerateResult {
  std::vector<int> tokens;   // new tokens, the stop token (if any) excluded
  bool stopped = false;      // ended on a stop token (not the limit)
  GenerationStats stats;
};

// Runs prompt (n >= 1 tokens) through `runner` and samples up to max_new tokens. on_token(id) is called
// for every new token that is not a stop token, as soon as it is produced (streaming).
// ignore_stop: keep going through stop tokens (benchmarks generate a fixed count).
GenerateResult generate(Runner& runner, const std::vector<int>& prompt, int max_new, Sampler& sampler,
                        const std::vector<int>& stop_ids, const std::function<void(int)>& on_token,
                        bool ignore_stop = false);

}  // namespace lowbit

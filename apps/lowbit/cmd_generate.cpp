// lowbit generate: stdout carries exactly the prompt text followed by the generated text, streamed;
// the metrics go to stderr.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "command.h"
#include "common.h"
#include "engine/generate.h"
#include "model/model.h"
#include "util/error.h"

namespace lowbit::cli {
namespace {

struct GenerateArgs {
  ModelArgs m;
  std::string prompt;
  std::string system;
  int max_new = 256;
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  uint64_t seed = 42;
  bool chat = false;
  bool quiet = false;
};

int run_generate(const GenerateArgs& a) {
  LB_CHECK(a.temperature >= 0.0f, "--temperature must be >= 0 (0 = greedy), got ", a.temperature);
  LB_CHECK(a.top_p > 0.0f && a.top_p <= 1.0f, "--top-p must be in (0, 1], got ", a.top_p);
  LB_CHECK(a.top_k >= 0, "--top-k must be >= 0, got ", a.top_k);
  Model model = load_model_for_run(a.m, !a.quiet);
  auto tok = load_tokenizer_for(model, a.m);

  std::vector<int> ids;
  if (a.chat) {
    LB_CHECK(tok->has_chat_template(), "--chat: the tokenizer (", tok->kind(), ") has no chat format");
    std::vector<ChatMessage> dialog;
    if (!a.system.empty()) dialog.push_back({"system", a.system});
    dialog.push_back({"user", a.prompt});
    ids = tok->encode_chat(dialog, /*add_generation_prompt=*/true);
  } else {
    ids = tok->encode(a.prompt, /*bos=*/true);
  }
  if (ids.empty()) ids.push_back(tok->bos_id() >= 0 ? tok->bos_id() : 0);

  std::vector<int> stops = tok->stop_ids();
  for (int s : model.config.stop_ids)
    if (std::find(stops.begin(), stops.end(), s) == stops.end()) stops.push_back(s);

  RunnerOptions ro = a.m.runner_options();
  ModelArgs margs = a.m;
  if (margs.max_seq_len == 0) margs.max_seq_len = std::min<int>(model.config.max_seq_len,
                                                                 std::max<int>(4096, int(ids.size()) + a.max_new));
  auto runner = make_runner(model, margs);
  if (!a.quiet) std::fprintf(stderr, "lowbit: %s on %s\n", model.path.c_str(), runner->device().c_str());

  // stdout: the prompt text as given, then each new token's text as soon as it exists
  std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
  std::fflush(stdout);
  Sampler sampler(SamplerConfig{a.temperature, a.top_k, a.top_p, a.seed});
  int prev = ids.back();
  GenerateResult r = generate(*runner, ids, a.max_new, sampler, stops, [&](int id) {
    const std::string piece = tok->decode(prev, id);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    prev = id;
  });
  if (isatty(STDOUT_FILENO)) std::fputc('\n', stdout);
  std::fflush(stdout);
  std::fprintf(stderr, "lowbit: %s%s\n", r.stats.summary().c_str(), r.stopped ? " (stop token)" : "");
  return 0;
}

RegisterCommand reg("generate", "generate text from a prompt (stdout: prompt + continuation; stderr: metrics)",
                    [](CLI::App& app) {
                      auto a = std::make_shared<GenerateArgs>();
                      a->m.add_model_options(app);
                      app.add_option("--prompt,-p", a->prompt, "prompt text")->required();
                      app.add_option("--max-new-tokens,-n", a->max_new, "new tokens to generate (default 256)");
                      app.add_option("--temperature", a->temperature, "sampling temperature; 0 = greedy (default 0.8)");
                      app.add_option("--top-k", a->top_k, "keep the k most likely tokens; 0 = all (default 40)");
                      app.add_option("--top-p", a->top_p, "nucleus sampling mass (default 0.95)");
                      app.add_option("--seed", a->seed, "sampling seed (default 42)");
                      app.add_flag("--chat", a->chat, "wrap the prompt in the model's chat format");
                      app.add_option("--system", a->system, "system message for --chat");
                      app.add_flag("--quiet,-q", a->quiet, "no progress or device lines on stderr (metrics still printed)");
                      a->m.add_quant_options(app);
                      a->m.add_runtime_options(app);
                      return [a] { return run_generate(*a); };
                    });

}  // namespace
}  // namespace lowbit::cli

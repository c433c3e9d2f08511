// lowbit quantize: a model in, a self-describing quantized model out (docs/file-format.md).
#include <cstdio>
#include <memory>

#include "command.h"
#include "common.h"
#include "io/loader.h"
#include "model/quantize_model.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/timer.h"

namespace lowbit::cli {
namespace {

struct QuantizeArgs {
  ModelArgs m;
  std::string output;
  bool force = false;
};

int run_quantize(const QuantizeArgs& a) {
  LB_CHECK(!a.m.weights.empty(), "--weights is required (one of: ", format_names(true, false), ")");
  LB_CHECK(!a.output.empty(), "--output is required");
  LB_CHECK(a.force || !file_exists(a.output), a.output, ": exists (use --force to overwrite)");
  ModelQuantOptions q = a.m.quant_options();
  std::optional<Format> acts = a.m.runner_options().acts;  // validated here, recorded in the file
  const double t0 = now_seconds();
  LoadOptions lo;
  lo.seed = a.m.seed;
  Model model = load_model(resolve_model_path(a.m.model), lo);
  std::string tok = a.m.tokenizer.empty() ? model.tokenizer_path : a.m.tokenizer;
  if (tok.empty()) tok = find_tokenizer_for(model.path, model.config.vocab_size);
  const int n = quantize_model(model, q);
  model.default_acts = acts;
  save_lowbit(model, a.output, tok);
  std::fprintf(stderr, "lowbit: quantized %d tensors to %s%s; wrote %s (%.1f MB of weights) in %.1f s\n", n,
               format_name(q.weights), acts ? (std::string(", activations ") + format_name(*acts)).c_str() : "",
               a.output.c_str(), model.weight_bytes() / 1e6, now_seconds() - t0);
  if (tok.empty()) std::fprintf(stderr, "lowbit: warning: no tokenizer found; the file carries none (use --tokenizer)\n");
  return 0;
}

RegisterCommand reg("quantize", "quantize a model's weights and write a self-describing lowbit file", [](CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  a->m.add_model_options(app);
  a->m.add_quant_options(app, /*acts_kv=*/false);
  app.add_option("--acts,-a", a->m.acts, "record this per-token activation format as the model's default");
  app.add_option("--output,-o", a->output, "output file (.lowbit.safetensors)")->required();
  app.add_flag("--force", a->force, "overwrite an existing output file");
  return [a] { return run_quantize(*a); };
});

}  // namespace
}  // namespace lowbit::cli

// Options shared by the subcommands that run a model (generate, eval, bench, quantize).
#pragma once
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/runner.h"
#include "model/model.h"
#include "model/quantize_model.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::cli {

struct ModelArgs {
  std::string model;       // file, directory or synthetic:<preset>; "" = the default model fetched by set-up
  std::string tokenizer;   // "" = next to / inside the model
  std::string device = "auto";
  std::string weights, acts, kv, lm_head, embeddings, keep;
  std::string calibration;  // static activation ranges (lowbit calibrate), for --acts int8-static / fp8-static
  bool search_scales = false;  // MX / NVFP4: also try the neighbouring block scales, keep the lowest error
  std::string scale_rule = "floor";
  std::string mode = "graph";
  int group = 0, threads = 0, max_seq_len = 0;
  uint64_t seed = 0;

  // Adds --model/--tokenizer (always), the quantization options (--weights ... ) and the runtime options
  // (--device, --threads, --max-seq-len, --mode) as asked.
  void add_model_options(CLI::App& app, bool tokenizer = true);
  void add_quant_options(CLI::App& app, bool acts_kv = true);
  void add_runtime_options(CLI::App& app);

  ModelQuantOptions quant_options() const;  // from --weights/--group/--keep/...; throws on bad values
  RunnerOptions runner_options() const;
};

// The model path: as given, or the default model (SmolLM2-135M-Instruct fetched by scripts/setup.sh),
// looked up in $LOWBIT_MODEL, then models/ next to the executable's build dir, then ./models.
std::string resolve_model_path(const std::string& given);

// A data file shipped with lowbit (data/): `given` when non-empty, else `name` looked up in $LOWBIT_DATA,
// data/ next to the executable's build dir, share/lowbit/data, then ./data. Error when absent.
std::string resolve_data_file(const std::string& given, const std::string& name);

// Loads the model named by args and applies --weights/--lm-head/--embeddings (on-the-fly quantization).
Model load_model_for_run(const ModelArgs& args, bool progress = true);

// The tokenizer: --tokenizer if given, else the one found next to / inside the model; Error when none.
std::unique_ptr<Tokenizer> load_tokenizer_for(const Model& model, const ModelArgs& args);

// Writes text to path (nothing when path is empty); Error naming the path when it cannot.
void write_text_file(const std::string& path, const std::string& text);

// "cpu" / "cuda" / "auto" -> a runner; auto picks cuda when a GPU is usable.
std::unique_ptr<Runner> make_runner(Model& model, const ModelArgs& args);

}  // namespace lowbit::cli

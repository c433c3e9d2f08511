#include "common.h"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "backend/cuda_api.h"
#include "engine/calibration.h"
#include "io/loader.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace lowbit::cli {

void ModelArgs::add_model_options(CLI::App& app, bool with_tokenizer) {
  app.add_option("--model,-m", model,
                 "model file or directory (HF safetensors dir, .gguf, llama2.c .bin, lowbit file) or "
                 "synthetic:<preset>; default: the SmolLM2-135M-Instruct fetched by scripts/setup.sh");
  if (with_tokenizer)
    app.add_option("--tokenizer,-t", tokenizer, "tokenizer file (default: next to or inside the model)");
}

void ModelArgs::add_quant_options(CLI::App& app, bool acts_kv) {
  app.add_option("--weights,-w", weights, "quantize linear weights on load to this format: " + format_names(true, false));
  app.add_option("--group,-g", group, "group size for group-wise formats (multiple of 32; default per format)");
  app.add_option("--keep", keep, "comma-separated tensors to leave unquantized (prefix* allowed), e.g. layers.0.*");
  app.add_option("--scale-rule", scale_rule, "MX scale rule: floor (OCP, default) or rceil (NVIDIA)");
  app.add_option("--lm-head", lm_head, "also quantize the classifier (lm_head) to this format");
  app.add_option("--embeddings", embeddings, "also quantize the token embeddings to this format");
  app.add_flag("--search-scales", search_scales,
               "MX/NVFP4 weights: try the neighbouring block scales too, keep the lowest squared error");
  if (acts_kv) {
    app.add_option("--acts,-a", acts, "quantize activations per token: " + format_names(false, true));
    app.add_option("--calibration", calibration,
                   "activation ranges recorded by `lowbit calibrate` (needed by --acts int8-static / fp8-static)");
    app.add_option("--kv", kv, "KV-cache format, quantized per head (e.g. int8, fp8-e4m3, int4)");
  }
}

void ModelArgs::add_runtime_options(CLI::App& app) {
  app.add_option("--device,-d", device, "cpu, cuda or auto (cuda when a GPU is usable)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("--max-seq-len", max_seq_len, "KV-cache positions (default: min(model context, 4096))");
  app.add_option("--mode", mode, "CUDA execution mode: eager, graph (default) or autotune")
      ->check(CLI::IsMember({"eager", "graph", "autotune"}));
}

ModelQuantOptions ModelArgs::quant_options() const {
  ModelQuantOptions q;
  if (!weights.empty()) q.weights = parse_format_or_throw(weights, "--weights");
  q.quant.group = group;
  auto rule = parse_scale_rule(scale_rule);
  LB_CHECK(rule.has_value(), "--scale-rule: expected floor or rceil, got '", scale_rule, "'");
  q.quant.rule = *rule;
  q.quant.search_scales = search_scales;
  q.keep = parse_keep_list(keep);
  if (!lm_head.empty()) q.lm_head = parse_format_or_throw(lm_head, "--lm-head");
  if (!embeddings.empty()) q.embeddings = parse_format_or_throw(embeddings, "--embeddings");
  if (group != 0) LB_CHECK(group > 0 && group % 32 == 0, "--group: ", group, " is not a positive multiple of 32");
  return q;
}

RunnerOptions ModelArgs::runner_options() const {
  RunnerOptions r;
  r.max_seq_len = max_seq_len;
  r.threads = threads;
  r.mode = mode;
  if (!acts.empty() && acts != "none" && acts != "bf16" && acts != "f32") {
    Format a = parse_format_or_throw(acts, "--acts");
    LB_CHECK(format_info(a).act_ok, "--acts: ", acts, " is not an activation format; use one of: ",
             format_names(false, true));
    r.acts = a;
  }
  if (!kv.empty() && kv != "none") r.kv = parse_format_or_throw(kv, "--kv");
  if (!calibration.empty()) r.calibration = std::make_shared<ActCalibration>(ActCalibration::load(calibration));
  return r;
}

static std::string exe_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string p(buf);
  return p.substr(0, p.rfind('/'));
}

std::string resolve_model_path(const std::string& given) {
  if (!given.empty()) return given;
  const char* name = "SmolLM2-135M-Instruct.Q4_1.gguf";
  std::vector<std::string> candidates;
  if (const char* e = std::getenv("LOWBIT_MODEL")) candidates.push_back(e);
  const std::string d = exe_dir();
  candidates.push_back(d + "/../models/" + name);       // build/lowbit -> models/
  candidates.push_back(d + "/../share/lowbit/models/" + name);
  candidates.push_back(std::string("models/") + name);
  for (const auto& c : candidates)
    if (file_exists(c)) return c;
  fail("no --model given and the default model (", name, ") was not found in $LOWBIT_MODEL, ", d,
       "/../models or ./models; run scripts/setup.sh to fetch it, or pass --model PATH");
}

std::string resolve_data_file(const std::string& given, const std::string& name) {
  if (!given.empty()) {
    LB_CHECK(file_exists(given), given, ": no such file");
    return given;
  }
  std::vector<std::string> candidates;
  if (const char* e = std::getenv("LOWBIT_DATA")) candidates.push_back(std::string(e) + "/" + name);
  const std::string d = exe_dir();
  candidates.push_back(d + "/../data/" + name);  // build/lowbit -> data/
  candidates.push_back(d + "/../share/lowbit/data/" + name);
  candidates.push_back("data/" + name);
  for (const auto& c : candidates)
    if (file_exists(c)) return c;
  fail("the data file ", name, " was not found in $LOWBIT_DATA, ", d, "/../data or ./data; pass the file explicitly");
}

Model load_model_for_run(const ModelArgs& args, bool progress) {
  LoadOptions lo;
  lo.seed = args.seed;
  lo.progress = progress;
  Model m = load_model(resolve_model_path(args.model), lo);
  ModelQuantOptions q = args.quant_options();
  q.progress = progress;
  if (args.weights.empty()) q.keep.push_back("layers.*");  // --lm-head / --embeddings alone: blocks as loaded
  if (!args.weights.empty() || q.lm_head || q.embeddings) quantize_model(m, q);
  return m;
}

std::unique_ptr<Tokenizer> load_tokenizer_for(const Model& model, const ModelArgs& args) {
  std::string path = args.tokenizer;
  if (path.empty()) path = model.tokenizer_path;
  if (path.empty()) path = find_tokenizer_for(model.path, model.config.vocab_size);
  LB_CHECK(!path.empty(), model.path, ": no tokenizer found next to or inside the model; pass --tokenizer PATH");
  auto tok = load_tokenizer(path);
  LB_CHECK(tok->vocab_size() <= model.config.vocab_size, path, ": tokenizer has ", tok->vocab_size(),
           " tokens but the model's vocabulary is ", model.config.vocab_size);
  return tok;
}

void write_text_file(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  std::ofstream out(path);
  LB_CHECK(out.good(), path, ": cannot write");
  out << text;
  LB_CHECK(out.good(), path, ": write failed");
}

std::unique_ptr<Runner> make_runner(Model& model, const ModelArgs& args) {
  RunnerOptions ro = args.runner_options();
  if (!ro.acts && args.acts.empty()) ro.acts = model.default_acts;  // the file's recorded default
  if (args.device == "cpu") return make_cpu_runner(model, ro);
  std::string why;
  const bool gpu = cuda_available(&why);
  if (args.device == "cuda") {
    LB_CHECK(gpu, "--device cuda: ", why);
    return make_cuda_runner(model, ro);
  }
  return gpu ? make_cuda_runner(model, ro) : make_cpu_runner(model, ro);
}

}  // namespace lowbit::cli

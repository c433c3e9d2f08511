// lowbit bench: the survey table as a command. Rows are (activation, weight, mode) configurations on one
// model (default synthetic:llama-3.1-8b), prompt "Hello, my name is", 200 new tokens, greedy, batch 1.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>

#include "backend/cuda_api.h"
#include "bench/survey.h"
#include "command.h"
#include "common.h"
#include "engine/generate.h"
#include "io/loader.h"
#include "model/quantize_model.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/strings.h"

namespace lowbit::cli {
namespace {

struct BenchArgs {
  ModelArgs m;
  std::string formats, modes = "graph", acts_list = "bf16";
  std::string prompt = "Hello, my name is";
  int new_tokens = 200, reps = 3, warmup = 1;
  std::string json, csv, md;
  bool profile = false, timeline = false;
  std::string settings;  // --settings: A/B knob settings measured on each loaded model
  std::string command;
};

// "Hello, my name is" under the Llama-3 tokenizer (BOS first), as the survey's workload uses it. The
// tokenizer tests check these ids against the real tokenizer.model.
const std::vector<int> kLlama3HelloIds = {128000, 9906, 11, 856, 836, 374};

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return b;
}

std::vector<int> prompt_ids(const BenchArgs& a, const Model& model) {
  const bool synthetic = model.path.rfind("synthetic:", 0) == 0;
  if (synthetic && a.m.tokenizer.empty()) {
    LB_CHECK(model.config.vocab_size == 128256, model.path,
             ": no tokenizer for this synthetic preset; pass --tokenizer (Llama-3 ids are built in only for "
             "vocab 128256)");
    LB_CHECK(a.prompt == "Hello, my name is", "--prompt needs --tokenizer for a synthetic model");
    return kLlama3HelloIds;
  }
  auto tok = load_tokenizer_for(model, a.m);
  std::vector<int> ids = tok->encode(a.prompt, /*bos=*/true);
  LB_CHECK(!ids.empty(), "the prompt encodes to no tokens");
  return ids;
}

Model build_model(const BenchArgs& a, Format weights, bool on_gpu) {
  const std::string spec = resolve_model_path(a.m.model);
  ModelQuantOptions q = a.m.quant_options();
  q.weights = weights;
  q.progress = false;
  if (spec.rfind("synthetic:", 0) == 0 && on_gpu) {
    // random codes generated matrix by matrix and uploaded: no host copy of the whole model
    Model m;
    m.config = preset_config(spec.substr(10));
    m.path = spec;
    m.source = ModelSource::Synthetic;
    DeferredWeights d;
    d.linear = weights;
    d.group = a.m.group;
    d.lm_head = q.lm_head.value_or(Format::BF16);
    d.embeddings = Format::BF16;
    d.seed = a.m.seed;
    m.deferred = d;
    return m;
  }
  LoadOptions lo;
  lo.seed = a.m.seed;
  lo.progress = false;
  Model m = load_model(spec, lo);
  quantize_model(m, q);  // also bf16: an fp32 checkpoint becomes bf16 so that the row means what it says
  return m;
}

// Per-op times (ms, in launch order) summed by op name, under `title`.
void print_op_table(const std::vector<std::pair<std::string, double>>& ops, const std::string& title) {
  std::map<std::string, std::pair<int, double>> agg;
  std::vector<std::string> order;
  double total = 0;
  for (const auto& [name, ms] : ops) {
    if (!agg.count(name)) order.push_back(name);
    agg[name].first++;
    agg[name].second += ms;
    total += ms;
  }
  std::printf("\n%s\n| op | launches | total ms | share |\n|---|---|---|---|\n", title.c_str());
  for (const auto& n : order)
    std::printf("| %s | %d | %.3f | %.1f%% |\n", n.c_str(), agg[n].first, agg[n].second, 100.0 * agg[n].second / total);
  std::printf("| total | %zu | %.3f | 100%% |\n", ops.size(), total);
}

void print_profile(const std::vector<std::pair<std::string, double>>& ops, const std::string& label) {
  print_op_table(ops, "per-kernel time of one decode step (" + label + "; ops serialized with events, summed over layers)");
}

void print_prompt_profile(const PromptProfile& pp, const std::string& label) {
  print_op_table(pp.ops, "per-kernel time of the prompt (" + label + ", " + std::to_string(pp.tokens) +
                             " tokens, with its first token's sampling; ops serialized with events, summed over layers)");
  std::printf("the prompt as run: GPU %.3f ms, host enqueue %.3f ms, wall to the token %.3f ms\n", pp.gpu_ms,
              pp.enqueue_ms, pp.wall_ms);
}

// Warm-up, then a.reps greedy generations of a.new_tokens into row (with --profile / --timeline tables).
void measure_row(const BenchArgs& a, Runner& runner, const std::vector<int>& ids, const SurveyMeta& meta,
                 SurveyRow& row, bool gpu) {
  Sampler warm(SamplerConfig{});
  for (int i = 0; i < a.warmup; ++i) generate(runner, ids, std::min(a.new_tokens, 32), warm, {}, nullptr, true);
  for (int r = 0; r < a.reps; ++r) {
    Sampler s(SamplerConfig{});  // greedy
    GenerateResult g = generate(runner, ids, a.new_tokens, s, {}, nullptr, /*ignore_stop=*/true);
    row.reps.push_back(g.stats);
    std::fprintf(stderr, "%.1f ", g.stats.tps());
    std::fflush(stderr);
  }
  row.weight_bytes_per_token = double(runner.weight_bytes_per_token());
  row.kv_bytes_per_position = double(runner.kv_bytes_per_position());
  std::vector<double> ttft, tpot;
  for (const GenerationStats& g : row.reps) {
    ttft.push_back(g.ttft_s() * 1e3);
    tpot.push_back(g.tpot_s() * 1e3);
  }
  std::fprintf(stderr, "tok/s | TTFT %.2f ms | TPOT %.3f ms", stat_of(ttft).median, stat_of(tpot).median);
  if (meta.read_bw_gbps > 0) std::fprintf(stderr, " | %.1f%% of BW", 100.0 * achieved_gbps(row) / meta.read_bw_gbps);
  std::fprintf(stderr, "\n");
  const std::string label = row.weights + ", " + row.mode;
  if (a.profile && gpu) {
    // at the middle of the timed run's context (the KV cache holds it from the last repetition)
    const int pos = int(ids.size()) + a.new_tokens / 2;
    print_profile(cuda_profile_decode_step(runner, ids.back(), pos), label + ", position " + std::to_string(pos));
    if (ids.size() >= 2) {
      Sampler greedy(SamplerConfig{});
      print_prompt_profile(cuda_profile_prompt(runner, ids, greedy), label);
    }
  }
  if (a.timeline && gpu) {
    const int pos = int(ids.size()) + a.new_tokens / 2;
    std::fputs(step_timeline_markdown(cuda_timeline_decode_step(runner, ids.back(), pos),
                                      label + ", position " + std::to_string(pos + 1))
                   .c_str(),
               stdout);
  }
}

int run_bench(BenchArgs& a) {
  if (a.m.model.empty()) a.m.model = "synthetic:llama-3.1-8b";
  LB_CHECK(a.reps >= 1, "--reps must be >= 1");
  LB_CHECK(a.new_tokens >= 2, "--new-tokens must be >= 2 (TPOT needs a decode step)");
  std::vector<Format> weights;
  if (a.formats.empty()) {
    for (const auto& fi : all_formats())
      if (fi.weight_ok && fi.id != Format::F32) weights.push_back(fi.id);
  } else {
    weights = parse_format_list(a.formats, "--formats");
  }
  std::vector<std::string> modes;
  for (auto& s : split_commas(a.modes)) {
    LB_CHECK(s == "eager" || s == "graph" || s == "autotune", "--modes: unknown mode '", s, "'");
    modes.push_back(s);
  }
  std::vector<std::string> acts = split_commas(a.acts_list);

  std::string why;
  const bool gpu = a.m.device != "cpu" && cuda_available(&why);
  LB_CHECK(gpu || a.m.device != "cuda", "--device cuda: ", why);
  if (!gpu) modes = {"cpu"};  // execution modes are CUDA's; the CPU has one
  if (!gpu && (a.profile || a.timeline))
    std::fprintf(stderr, "bench: %s CUDA's kernels; the rows run on the CPU, so nothing of that is printed\n",
                 a.profile && a.timeline ? "--profile and --timeline time" : a.profile ? "--profile times" : "--timeline times");

  SurveyMeta meta;
  meta.date = utc_now();
  meta.commit = LOWBIT_GIT_COMMIT;
  meta.command = a.command;
  meta.model = resolve_model_path(a.m.model);
  meta.new_tokens = a.new_tokens;
  meta.reps = a.reps;
  if (gpu) {
    GpuInfo g = cuda_gpu_info();
    meta.device = g.name + " (" + std::to_string(g.sm_count) + " SMs, " + std::to_string(g.total_memory >> 30) +
                  " GiB, CUDA driver API " + std::to_string(g.driver_version) + ")";
    meta.driver = g.driver;
    std::fprintf(stderr, "bench: measuring the device read bandwidth ...\n");
    meta.read_bw_gbps = cuda_measure_read_bandwidth();
    std::fprintf(stderr, "bench: read bandwidth %.0f GB/s\n", meta.read_bw_gbps);
  } else {
    meta.device = "cpu";
  }

  std::vector<SurveyRow> rows;
  auto write_tables = [&] {  // every finished row, so that a run cut short (a time limit) keeps its table
    write_text_file(a.md, survey_markdown(meta, rows));
    write_text_file(a.json, survey_json(meta, rows));
    write_text_file(a.csv, survey_csv(meta, rows));
  };
  write_tables();  // an unwritable path fails now, not after the run
  const bool with_settings = !a.settings.empty();
  const std::vector<EnvSetting> settings = parse_env_settings(a.settings);  // one "defaults" when absent
  LB_CHECK(!with_settings || gpu, "--settings changes the CUDA backend's knobs: nothing to compare on the CPU");
  const auto saved_env = save_env(settings);
  const size_t total = weights.size() * modes.size() * acts.size() * settings.size();
  size_t idx = 0;
  for (const auto& mode : modes) {
    for (const auto& act : acts) {
      for (Format w : weights) {
        // the model is built and uploaded once, then measured under each setting
        std::unique_ptr<Model> model;  // kept while its runner lives
        std::unique_ptr<Runner> runner;
        std::vector<int> ids;
        std::string build_error;
        try {
          ModelArgs margs = a.m;
          margs.mode = gpu ? mode : "graph";
          margs.acts = act;
          margs.device = gpu ? "cuda" : "cpu";
          if (margs.max_seq_len == 0) margs.max_seq_len = 1024;
          model = std::make_unique<Model>(build_model(a, w, gpu));
          ids = prompt_ids(a, *model);
          meta.prompt_tokens = int(ids.size());
          runner = make_runner(*model, margs);
        } catch (const Error& e) {
          build_error = e.what();
        }
        for (const EnvSetting& setting : settings) {
          ++idx;
          SurveyRow row;
          row.acts = act;
          row.weights = format_name(w);
          row.group = format_info(w).scheme == ScaleScheme::GroupAffine ? effective_group(w, a.m.group) : 0;
          row.mode = with_settings ? mode + " [" + setting.label + "]" : mode;
          std::fprintf(stderr, "bench [%zu/%zu] %s x %s, %s: ", idx, total, act.c_str(), row.weights.c_str(),
                       row.mode.c_str());
          std::fflush(stderr);
          try {
            if (!build_error.empty()) throw Error(build_error);
            if (with_settings) {
              apply_env_setting(setting, saved_env);
              cuda_reread_env_knobs(*runner);
            }
            measure_row(a, *runner, ids, meta, row, gpu);
          } catch (const Error& e) {
            row.error = e.what();
            std::fprintf(stderr, "error: %s\n", e.what());
          }
          rows.push_back(std::move(row));
          write_tables();
        }
        if (with_settings) apply_env_setting(EnvSetting{}, saved_env);  // the environment as it was
      }
    }
  }
  const std::string md = survey_markdown(meta, rows);
  std::printf("\n%s", md.c_str());
  bool any_ok = std::any_of(rows.begin(), rows.end(), [](const SurveyRow& r) { return r.error.empty(); });
  return any_ok ? 0 : 1;
}

RegisterCommand reg("bench", "the survey table: speed of every format (TPS, TTFT, TPOT, throughput, % of bandwidth)",
                    [](CLI::App& app) {
                      auto a = std::make_shared<BenchArgs>();
                      a->m.add_model_options(app);
                      app.add_option("--formats,-f", a->formats, "weight formats, comma-separated (default: all)");
                      app.add_option("--acts-list", a->acts_list, "activation formats, comma-separated (default bf16)");
                      app.add_option("--modes", a->modes, "execution modes, comma-separated: eager,graph,autotune (default graph)");
                      app.add_option("--reps,-r", a->reps, "repetitions per row (default 3)");
                      app.add_option("--warmup", a->warmup, "warm-up generations per row (default 1)");
                      app.add_option("--prompt,-p", a->prompt, "prompt (default \"Hello, my name is\")");
                      app.add_option("--new-tokens,-n", a->new_tokens, "new tokens per generation (default 200)");
                      app.add_option("--json", a->json, "also write the table as JSON to this file");
                      app.add_option("--csv", a->csv, "also write the table as CSV to this file");
                      app.add_option("--md", a->md, "also write the markdown table to this file");
                      app.add_flag("--profile", a->profile, "per-kernel time breakdown of one decode step and of the prompt per row (CUDA)");
                      app.add_flag("--timeline", a->timeline,
                                   "where one graph-replayed decode step spends its time, per op, from in-kernel "
                                   "timer stamps (CUDA)");
                      app.add_option("--settings", a->settings,
                                     "A/B: measure each row under these settings of the CUDA backend's knobs, "
                                     "';'-separated, each space-separated LOWBIT_*=value words (\"\" = defaults); "
                                     "the model is loaded once per row");
                      app.add_option("--group,-g", a->m.group, "group size for group-wise formats");
                      app.add_option("--lm-head", a->m.lm_head, "quantize lm_head to this format (default: bf16)");
                      app.add_option("--seed", a->m.seed, "seed of synthetic weights");
                      app.add_option("--device,-d", a->m.device, "cpu, cuda or auto")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
                      app.add_option("--threads", a->m.threads, "CPU threads");
                      app.add_option("--max-seq-len", a->m.max_seq_len, "KV-cache positions (default 1024)");
                      return [a, &app] {
                        a->command = "lowbit bench";
                        for (const auto* o : app.get_options())
                          if (o->count() && o->get_name() != "--help")
                            for (const auto& r : o->results()) a->command += " " + o->get_name() + " " + r;
                        return run_bench(*a);
                      };
                    });

}  // namespace
}  // namespace lowbit::cli

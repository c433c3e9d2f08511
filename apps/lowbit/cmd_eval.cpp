// lowbit eval: the quality of formats. Every configuration (weights x activations x KV cache, plus
// lm_head / embeddings) is compared with the model as loaded on the same text: perplexity, mean KL of the
// next-token distributions, top-1 agreement, bits per weight. Markdown on stdout, JSON on request.
#include <algorithm>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "command.h"
#include "common.h"
#include "eval/quality.h"
#include "eval/report.h"
#include "io/loader.h"
#include "model/quantize_model.h"
#include "util/error.h"
#include "util/strings.h"
#include "util/progress.h"

namespace lowbit::cli {
namespace {

constexpr const char* kDefaultText = "persuasion.txt";

struct EvalArgs {
  ModelArgs m;
  std::string text;
  std::string weights_list, acts_list, kv_list;
  std::vector<std::string> rows;
  std::string rows_file;
  int ctx = 512, stride = 0, windows = 0, rows_per_pass = 16;
  std::string json, md;
  bool quiet = false;
  std::string command;
};

// One configuration. Empty strings inherit the command-wide options; "none" switches a quantization off.
struct RowSpec {
  std::string weights, acts, kv, lm_head, embeddings, rule;
  bool search = false;
  int group = 0;
};

// "int4-hqq", "w=mxfp4+search a=int8 kv=fp8-e4m3", "weights=int4,group=64,lm-head=int8,embeddings=int8"
RowSpec parse_row(const std::string& spec) {
  RowSpec r;
  std::string s = spec;
  std::replace(s.begin(), s.end(), ',', ' ');
  std::istringstream in(s);
  std::string tok;
  bool any = false;
  while (in >> tok) {
    any = true;
    const size_t eq = tok.find('=');
    const std::string key = eq == std::string::npos ? "" : tok.substr(0, eq);
    const std::string val = eq == std::string::npos ? tok : tok.substr(eq + 1);
    LB_CHECK(eq == std::string::npos || !val.empty(), "--row '", spec, "': no value for '", key, "'");
    if (key.empty() && val == "search") r.search = true;
    else if (key.empty() || key == "w" || key == "weights") r.weights = val;
    else if (key == "a" || key == "acts") r.acts = val;
    else if (key == "kv") r.kv = val;
    else if (key == "head" || key == "lm-head" || key == "lm_head") r.lm_head = val;
    else if (key == "emb" || key == "embeddings") r.embeddings = val;
    else if (key == "rule" || key == "scale-rule") r.rule = val;
    else if (key == "g" || key == "group") {
      try {
        r.group = std::stoi(val);
      } catch (const std::exception&) {
        fail("--row '", spec, "': group '", val, "' is not a number");
      }
    } else {
      fail("--row '", spec, "': unknown key '", key, "' (w, a, kv, head, emb, g, rule, search)");
    }
  }
  LB_CHECK(any, "--row: empty configuration");
  const std::string suffix = "+search";
  if (r.weights.size() > suffix.size() && r.weights.compare(r.weights.size() - suffix.size(), suffix.size(), suffix) == 0) {
    r.weights.resize(r.weights.size() - suffix.size());
    r.search = true;
  }
  return r;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out = split_commas(s);
  if (out.empty()) out.push_back("");
  return out;
}

std::vector<RowSpec> build_row_specs(const EvalArgs& a) {
  std::vector<RowSpec> specs;
  const bool lists = !a.weights_list.empty() || !a.acts_list.empty() || !a.kv_list.empty();
  if (lists || (a.rows.empty() && a.rows_file.empty() && (!a.m.lm_head.empty() || !a.m.embeddings.empty()))) {
    for (const auto& w : split_list(a.weights_list))
      for (const auto& act : split_list(a.acts_list))
        for (const auto& kv : split_list(a.kv_list)) {
          RowSpec r = w.empty() ? RowSpec{} : parse_row(w);
          r.acts = act;
          r.kv = kv;
          specs.push_back(r);
        }
  }
  for (const auto& r : a.rows) specs.push_back(parse_row(r));
  if (!a.rows_file.empty()) {
    std::ifstream in(a.rows_file);
    LB_CHECK(in.good(), a.rows_file, ": cannot read the rows file");
    std::string line;
    int ln = 0;
    while (std::getline(in, line)) {
      ++ln;
      const size_t hash = line.find('#');
      if (hash != std::string::npos) line.resize(hash);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        specs.push_back(parse_row(line));
      } catch (const Error& e) {
        fail(a.rows_file, ":", ln, ": ", e.what());
      }
    }
  }
  LB_CHECK(!specs.empty(), "nothing to evaluate: give --weights FMT[,FMT...] (and/or --acts, --kv lists), --row SPEC "
           "or --rows-file FILE");
  return specs;
}

// The row's options: the command-wide ones, overridden by the row's own.
ModelArgs row_args(const ModelArgs& base, const RowSpec& r) {
  ModelArgs a = base;
  auto take = [](std::string& dst, const std::string& v) {
    if (!v.empty()) dst = v == "none" ? "" : v;
  };
  take(a.weights, r.weights);
  take(a.acts, r.acts);
  take(a.kv, r.kv);
  take(a.lm_head, r.lm_head);
  take(a.embeddings, r.embeddings);
  if (r.group) a.group = r.group;
  if (!r.rule.empty()) a.scale_rule = r.rule;
  a.search_scales = a.search_scales || r.search;
  return a;
}

// The format the model's linear weights are held in ("mixed" when they differ).
std::string loaded_format(Model& m) {
  std::string f;
  m.for_each_linear([&](const std::string&, QTensor& t) {
    const std::string n = format_name(t.fmt);
    f = f.empty() || f == n ? n : "mixed";
  });
  return f;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return b;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LB_CHECK(in.good(), path, ": cannot read the text");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int run_eval(EvalArgs& a) {
  LB_CHECK(a.ctx >= 2, "--ctx must be >= 2, got ", a.ctx);
  const std::vector<RowSpec> specs = build_row_specs(a);
  const std::string text_path = resolve_data_file(a.text, kDefaultText);

  LoadOptions lo;
  lo.seed = a.m.seed;
  lo.progress = !a.quiet;
  Model base = load_model(resolve_model_path(a.m.model), lo);
  auto tok = load_tokenizer_for(base, a.m);
  const std::vector<int> tokens = tok->encode(read_text(text_path), /*bos=*/false);
  const int bos_id = tok->adds_bos() ? tok->bos_id() : -1;

  // the reference: the model as loaded, fp32 activations, fp32 KV cache
  ModelArgs ref_args = a.m;
  ref_args.weights = ref_args.acts = ref_args.kv = ref_args.lm_head = ref_args.embeddings = "";
  ref_args.calibration = "";
  ref_args.max_seq_len = a.ctx;
  auto ref_runner = make_runner(base, ref_args);

  EvalMeta meta;
  meta.date = utc_now();
  meta.commit = LOWBIT_GIT_COMMIT;
  meta.command = a.command;
  meta.device = ref_runner->device();
  meta.model = base.path;
  meta.text = text_path;
  meta.text_tokens = int64_t(tokens.size());
  meta.ctx = a.ctx;
  meta.stride = a.stride;
  meta.bos = bos_id >= 0;
  const std::string loaded = loaded_format(base);
  meta.reference = "the model as loaded (" + loaded + " linear weights, fp32 activations and KV cache)";

  std::vector<EvalRow> rows;
  EvalRow ref_row;
  ref_row.reference = true;
  ref_row.weights = loaded;
  ref_row.bpw_linear = linear_bits_per_weight(base);
  ref_row.bpw_model = model_bits_per_weight(base);
  rows.push_back(ref_row);

  QualityOptions qo;
  qo.ctx = a.ctx;
  qo.stride = a.stride;
  qo.max_windows = a.windows;
  qo.bos_id = bos_id;

  // Rows run in passes of --rows-per-pass configurations: within a pass every configuration's model and
  // runner stay alive and each window runs the reference once, then all of them; passes bound the memory
  // (each SmolLM2 configuration holds ~200 MB) at the price of one more reference run per window and pass.
  LB_CHECK(a.rows_per_pass >= 1, "--rows-per-pass must be >= 1");
  const size_t passes = (specs.size() + size_t(a.rows_per_pass) - 1) / size_t(a.rows_per_pass);
  for (size_t pass = 0; pass < passes; ++pass) {
    const size_t first = pass * size_t(a.rows_per_pass), last = std::min(specs.size(), first + size_t(a.rows_per_pass));
    const std::string tag = passes > 1 ? " (pass " + std::to_string(pass + 1) + "/" + std::to_string(passes) + ")" : "";
    std::vector<std::unique_ptr<Model>> models;
    std::vector<std::unique_ptr<Runner>> runners;
    std::vector<Runner*> live;
    std::vector<size_t> live_row;  // rows[] index of each live runner
    Progress qbar("eval: preparing configurations" + tag, int64_t(last - first), !a.quiet);
    for (size_t i = first; i < last; ++i) {
      const ModelArgs ra = row_args(a.m, specs[i]);
      EvalRow row;
      row.weights = ra.weights.empty() ? loaded : ra.weights;
      if (ra.search_scales) row.weights += "+search";
      row.acts = ra.acts.empty() ? "none" : ra.acts;
      row.kv = ra.kv.empty() ? "none" : ra.kv;
      row.lm_head = ra.lm_head.empty() ? "-" : ra.lm_head;
      row.embeddings = ra.embeddings.empty() ? "-" : ra.embeddings;
      try {
        if (!ra.weights.empty()) {
          const Format wf = parse_format_or_throw(ra.weights, "--weights");
          if (format_info(wf).scheme == ScaleScheme::GroupAffine) row.group = effective_group(wf, ra.group);
          if (format_info(wf).scheme == ScaleScheme::BlockE8M0 && ra.scale_rule != "floor")
            row.weights += " " + ra.scale_rule;
        }
        auto model = std::make_unique<Model>(base);  // shares the loaded buffers; quantization replaces tensors
        ModelQuantOptions q = ra.quant_options();
        q.progress = false;
        if (ra.weights.empty()) q.keep.push_back("layers.*");  // lm_head / embeddings only: blocks as loaded
        if (!ra.weights.empty() || q.lm_head || q.embeddings) quantize_model(*model, q);
        row.bpw_linear = linear_bits_per_weight(*model);
        row.bpw_model = model_bits_per_weight(*model);
        ModelArgs run_args = ra;
        run_args.max_seq_len = a.ctx;
        auto runner = make_runner(*model, run_args);
        live.push_back(runner.get());
        live_row.push_back(rows.size());
        models.push_back(std::move(model));
        runners.push_back(std::move(runner));
      } catch (const Error& e) {
        row.error = e.what();
      }
      rows.push_back(row);
      qbar.update(int64_t(i - first + 1), rows.back().weights);
    }
    qbar.finish();

    if (live.empty() && pass > 0) continue;  // nothing to run (the reference was measured in pass 1)
    std::unique_ptr<Progress> pbar;
    qo.progress = [&](int64_t done, int64_t total, const std::string& what) {
      if (!pbar) pbar = std::make_unique<Progress>("eval" + tag, total, !a.quiet);
      pbar->update(done, what);
    };
    const QualityResult res = evaluate_quality(*ref_runner, live, tokens, qo);
    if (pbar) pbar->finish();
    meta.windows = int(res.windows.size());
    meta.scored = res.reference.positions;
    rows[0].metrics = res.reference;  // the same in every pass
    for (size_t c = 0; c < live.size(); ++c) {
      rows[live_row[c]].metrics = res.configs[c];
      rows[live_row[c]].error = res.errors[c];
    }
  }

  const std::string md = eval_markdown(meta, rows);
  std::fwrite(md.data(), 1, md.size(), stdout);
  write_text_file(a.md, md);
  write_text_file(a.json, eval_json(meta, rows));
  const bool any_error = std::any_of(rows.begin(), rows.end(), [](const EvalRow& r) { return !r.error.empty(); });
  return any_error ? 1 : 0;
}

RegisterCommand reg(
    "eval",
    "quality of formats: perplexity, KL to the unquantized model, top-1 agreement, bits per weight (one row per "
    "configuration)",
    [](CLI::App& app) {
      auto a = std::make_shared<EvalArgs>();
      a->m.add_model_options(app);
      app.add_option("--text", a->text, std::string("text to evaluate on (default: data/") + kDefaultText +
                                            ", Jane Austen's Persuasion, public domain)");
      app.add_option("--weights,-w", a->weights_list,
                     "weight formats, comma-separated; one row each (a name may end in +search: MX/NVFP4 block-"
                     "scale search): " + format_names(true, false));
      app.add_option("--acts,-a", a->acts_list, "activation formats, comma-separated (rows: weights x acts x kv; "
                                                "none = fp32): " + format_names(false, true));
      app.add_option("--kv", a->kv_list, "KV-cache formats, comma-separated, quantized per head (none = fp32)");
      app.add_option("--row", a->rows,
                     "one configuration, e.g. \"w=int4-hqq a=int8 kv=fp8-e4m3 head=int8 emb=int8 g=64\" "
                     "(keys: w, a, kv, head, emb, g, rule, search; repeatable)");
      app.add_option("--rows-file", a->rows_file, "configurations, one --row spec a line (# comments)");
      app.add_option("--group,-g", a->m.group, "group size for group-wise formats (default per format)");
      app.add_option("--lm-head", a->m.lm_head, "quantize the classifier to this format in every row");
      app.add_option("--embeddings", a->m.embeddings, "quantize the token embeddings to this format in every row");
      app.add_option("--keep", a->m.keep, "tensors left unquantized (prefix* allowed)");
      app.add_option("--scale-rule", a->m.scale_rule, "MX scale rule: floor (default) or rceil");
      app.add_flag("--search-scales", a->m.search_scales, "MX/NVFP4 block-scale search in every row");
      app.add_option("--calibration", a->m.calibration, "activation ranges from `lowbit calibrate` (static acts)");
      app.add_option("--ctx", a->ctx, "positions per window, BOS included (default 512)");
      app.add_option("--stride", a->stride,
                     "text tokens between window starts (default: the window: non-overlapping); with a shorter "
                     "stride the already-scored tokens of a window are warm-up context");
      app.add_option("--windows", a->windows, "evaluate only the first N windows (default: the whole text)");
      app.add_option("--rows-per-pass", a->rows_per_pass,
                     "configurations held in memory at once (default 16); each pass reruns the reference");
      app.add_option("--json", a->json, "also write the table as JSON to this file");
      app.add_option("--md", a->md, "also write the markdown table to this file");
      app.add_flag("--quiet,-q", a->quiet, "no progress on stderr");
      a->m.add_runtime_options(app);
      return [a, &app] {
        a->command = "lowbit eval";
        for (const auto* o : app.get_options())
          if (o->count() && o->get_name() != "--help") {
            if (o->get_expected_max() == 0) a->command += " " + o->get_name();
            else
              for (const auto& r : o->results()) a->command += " " + o->get_name() + " '" + r + "'";
          }
        return run_eval(*a);
      };
    });

}  // namespace
}  // namespace lowbit::cli

// lowbit calibrate: records every linear layer's input absmax over a text (on the CPU) into a JSON file,
// the ranges --acts int8-static / fp8-static take their per-tensor scales from.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "command.h"
#include "common.h"
#include "eval/calibrate.h"
#include "util/error.h"
#include "util/progress.h"

namespace lowbit::cli {
namespace {

constexpr const char* kDefaultCalibrationText = "northanger_abbey_1-5.txt";

struct CalibrateArgs {
  ModelArgs m;
  std::string text, out;
  int ctx = 512, windows = 0;
  bool quiet = false;
};

int run_calibrate(const CalibrateArgs& a) {
  const std::string text_path = resolve_data_file(a.text, kDefaultCalibrationText);
  Model model = load_model_for_run(a.m, !a.quiet);
  auto tok = load_tokenizer_for(model, a.m);
  std::ifstream in(text_path, std::ios::binary);
  LB_CHECK(in.good(), text_path, ": cannot read the text");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::vector<int> tokens = tok->encode(ss.str(), /*bos=*/false);

  CalibrateOptions co;
  co.ctx = a.ctx;
  co.max_windows = a.windows;
  co.bos_id = tok->adds_bos() ? tok->bos_id() : -1;
  co.threads = a.m.threads;
  std::unique_ptr<Progress> bar;
  co.progress = [&](int64_t done, int64_t total) {
    if (!bar) bar = std::make_unique<Progress>("calibrate", total, !a.quiet);
    bar->update(done);
  };
  ActCalibration cal = calibrate_activations(model, tokens, co);
  if (bar) bar->finish();
  cal.text = text_path;
  cal.weights = a.m.weights.empty() ? "as loaded" : a.m.weights;
  cal.save(a.out);

  float lo = INFINITY, hi = 0.0f;
  for (const auto& [name, v] : cal.absmax) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  std::printf("calibration: %zu linear inputs over %lld tokens of %s; absmax from %.4g to %.4g; written to %s\n",
              cal.absmax.size(), (long long)cal.tokens, text_path.c_str(), double(lo), double(hi), a.out.c_str());
  return 0;
}

RegisterCommand reg("calibrate",
                    "record per-tensor activation ranges over a text, for --acts int8-static / fp8-static",
                    [](CLI::App& app) {
                      auto a = std::make_shared<CalibrateArgs>();
                      a->m.add_model_options(app);
                      app.add_option("--text", a->text,
                                     std::string("calibration text (default: data/") + kDefaultCalibrationText +
                                         ", Jane Austen, public domain; distinct from eval's default text)");
                      app.add_option("--out,-o", a->out, "the calibration file to write (JSON)")->required();
                      app.add_option("--ctx", a->ctx, "positions per window, BOS included (default 512)");
                      app.add_option("--windows", a->windows, "use only the first N windows (default: all)");
                      app.add_option("--weights,-w", a->m.weights,
                                     "quantize the weights first (default: record with the weights as loaded)");
                      app.add_option("--group,-g", a->m.group, "group size for group-wise weight formats");
                      app.add_option("--threads", a->m.threads, "CPU threads (default: all cores)");
                      app.add_flag("--quiet,-q", a->quiet, "no progress on stderr");
                      return [a] { return run_calibrate(*a); };
                    });

}  // namespace
}  // namespace lowbit::cli

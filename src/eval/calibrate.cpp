#include "eval/calibrate.h"

#include "eval/quality.h"
#include "util/error.h"

namespace lowbit {

ActCalibration calibrate_activations(Model& model, const std::vector<int>& text_tokens, const CalibrateOptions& opt) {
  ActCalibration cal = ActCalibration::for_model(model.config);
  cal.model = model.path;
  RunnerOptions ro;
  ro.max_seq_len = opt.ctx;
  ro.threads = opt.threads;
  ro.acts = opt.acts;
  ro.record_calibration = &cal;
  LB_CHECK(!opt.acts || !is_static_act(*opt.acts), "calibration cannot run with static activations (",
           format_name(*opt.acts), "): they need the ranges being recorded");
  auto runner = make_cpu_runner(model, ro);
  const bool bos = opt.bos_id >= 0;
  const std::vector<EvalWindow> windows = plan_windows(int64_t(text_tokens.size()), opt.ctx, 0, bos, opt.max_windows);
  LB_CHECK(!windows.empty(), "calibration text: too few tokens (", text_tokens.size(), ")");
  std::vector<int> input;
  std::vector<float> logits(size_t(opt.ctx) * size_t(runner->vocab_size()));
  for (size_t i = 0; i < windows.size(); ++i) {
    const EvalWindow& w = windows[i];
    input.clear();
    if (bos) input.push_back(opt.bos_id);
    input.insert(input.end(), text_tokens.begin() + w.begin, text_tokens.begin() + w.end);
    // every position's logits, so that the classifier's input is recorded at every position too
    runner->forward_all(input.data(), int(input.size()), 0, logits.data());
    cal.tokens += int64_t(input.size());
    if (opt.progress) opt.progress(int64_t(i + 1), int64_t(windows.size()));
  }
  return cal;
}

}  // namespace lowbit

// The survey table: rows are (activation, weight, mode) configurations; columns the survey's metrics
// (TPS, TTFT, TPOT, prefill and decode throughput, latency) over repetitions (median, min, max), plus
// the bytes a decode step reads and the bandwidth that implies, as a share of the device's measured read
// bandwidth. Rendered as markdown, JSON and CSV.
#pragma once
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "backend/cuda_api.h"
#include "engine/generate.h"
#include "formats/format.h"

namespace lowbit {

struct SurveyMeta {
  std::string date, commit, command, device, driver, model;
  int prompt_tokens = 0, new_tokens = 0, reps = 0;
  double read_bw_gbps = 0.0;  // measured in the same run (0 = not measured)
};

struct SurveyRow {
  std::string acts = "bf16";      // activation format ("bf16" = not quantized)
  std::string weights;            // weight format name
  int group = 0;
  std::string mode;
  std::vector<GenerationStats> reps;
  double weight_bytes_per_token = 0;  // weights read per decode step (linear layers + lm_head + embedding row)
  double kv_bytes_per_position = 0;
  std::string error;              // non-empty: the row failed with this message
};

struct Stat {
  double median = 0, min = 0, max = 0;
};
Stat stat_of(std::vector<double> v);

// Bytes one decode step reads on average over the run (weights + the KV cache at the mean context).
double decode_bytes_per_token(const SurveyRow& r);
double achieved_gbps(const SurveyRow& r);  // decode bytes / median TPOT

std::string survey_markdown(const SurveyMeta& m, const std::vector<SurveyRow>& rows);
std::string survey_json(const SurveyMeta& m, const std::vector<SurveyRow>& rows);
std::string survey_csv(const SurveyMeta& m, const std::vector<SurveyRow>& rows);

// The step timeline (cuda_timeline_decode_step) per op name, averaged over its launches (the layers):
// wait = from the previous stamped op's last block exit to this op's median block past pdl_wait (the
// launch, the drain of the previous kernel, and unstamped kernels in between), stage = inputs staged
// (with the inner stamps where an op writes them), body = to the last block's exit; span = wait + stage +
// body, the op's share of the step (the first stamped op's span counts from its own first block).
struct StepTimelineRow {
  std::string name;
  int launches = 0, blocks = 0;  // blocks: per launch, averaged
  double doubled = 0;            // multiprocessors with more than one of a launch's blocks, averaged
  double resident = 0;           // first block's entry to the median release
  double wait = 0, stage = 0, body = 0, span = 0;
  double body_median = 0;        // the median block's exit after the median staging
  int late = 0;                  // launches with straggler figures (StepOpTimes::late_*), and their averages
  double late_entry = 0, late_release = 0, late_staged = 0, late_end = 0;
  double late_index = 0;          // their block indices as a fraction of the launch's blocks, averaged
  std::map<int, int> late_sms;    // multiprocessor -> launches in which one of the latest blocks ran on it
  int inner = 0;                 // launches with inner stamps, and their averages
  double arrived = 0, reduced = 0;
  int warps = 0;                 // launches with per-warp stamps: the blocks' last warp past pdl_wait and
  double last_released = 0, last_arrived = 0;  // with its x in, after the release
};
struct StepTimeline {
  std::vector<StepTimelineRow> rows;  // in order of first launch
  double stamped_span = 0;            // first stamped entry to last stamped exit
  std::vector<std::string> unstamped; // ops without stamps, in launch order
};
StepTimeline summarize_step_timeline(const std::vector<StepOpTimes>& ops);
std::string step_timeline_markdown(const std::vector<StepOpTimes>& ops, const std::string& label);

// `lowbit bench --settings "A;B;..."`: settings of the CUDA backend's A/B knobs, each measured on the same
// loaded model. A setting is space-separated VAR=value words (VAR a LOWBIT_* variable); an empty one is
// the defaults. Throws Error naming the bad word.
struct EnvSetting {
  std::string label;                                       // as written, or "defaults"
  std::vector<std::pair<std::string, std::string>> vars;   // VAR, value
};
std::vector<EnvSetting> parse_env_settings(const std::string& spec);
// Sets the variables of `s` and restores every other variable in `saved` to its value there (unset where
// it had none): the environment of one setting.
void apply_env_setting(const EnvSetting& s, const std::vector<std::pair<std::string, std::optional<std::string>>>& saved);
// The current values of every variable named in `all` (for apply_env_setting and the final restore).
std::vector<std::pair<std::string, std::optional<std::string>>> save_env(const std::vector<EnvSetting>& all);

}  // namespace lowbit

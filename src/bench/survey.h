// The survey table: rows are (activation, weight, mode) configurations; columns the survey's metrics
// (TPS, TTFT, TPOT, prefill and decode throughput, latency) over repetitions (median, min, max), plus
// the bytes a decode step reads and the bandwidth that implies, as a share of the device's measured read
// bandwidth. Rendered as markdown, JSON and CSV.
#pragma once
#include <optional>
#include <string>
#include <vector>

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

}  // namespace lowbit

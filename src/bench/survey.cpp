#include "bench/survey.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace lowbit {

Stat stat_of(std::vector<double> v) {
  Stat s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  s.max = v.back();
  return s;
}

namespace {
template <typename F>
Stat over(const SurveyRow& r, F f) {
  std::vector<double> v;
  for (const auto& g : r.reps) v.push_back(f(g));
  return stat_of(v);
}
std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
// "123.4 (120.1-125.0)"
std::string mm(const Stat& s, const char* f) {
  return fmt(f, s.median) + " (" + fmt(f, s.min) + "–" + fmt(f, s.max) + ")";
}
}  // namespace

double decode_bytes_per_token(const SurveyRow& r) {
  if (r.reps.empty()) return r.weight_bytes_per_token;
  const auto& g = r.reps.front();
  const double mean_ctx = g.prompt_tokens + 0.5 * g.new_tokens;
  return r.weight_bytes_per_token + r.kv_bytes_per_position * mean_ctx;
}

double achieved_gbps(const SurveyRow& r) {
  const Stat tpot = over(r, [](const GenerationStats& g) { return g.tpot_s(); });
  return tpot.median > 0 ? decode_bytes_per_token(r) / tpot.median / 1e9 : 0.0;
}

std::string survey_markdown(const SurveyMeta& m, const std::vector<SurveyRow>& rows) {
  std::ostringstream o;
  o << "lowbit survey: " << m.model << ", prompt " << m.prompt_tokens << " tokens, " << m.new_tokens
    << " new tokens, greedy, batch 1, " << m.reps << " repetitions (median, min–max)\n";
  o << "device: " << m.device << (m.driver.empty() ? "" : ", driver " + m.driver) << " | commit " << m.commit
    << " | " << m.date << "\n";
  if (m.read_bw_gbps > 0) o << "device read bandwidth measured in this run: " << fmt("%.0f", m.read_bw_gbps) << " GB/s\n";
  o << "\n| acts | weights | mode | TPS tok/s | TTFT ms | TPOT ms | prefill tok/s | decode tok/s | latency s | weight GB | GB/s | % of BW |\n";
  o << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::string w = r.weights + (r.group ? " g" + std::to_string(r.group) : "");
    if (!r.error.empty()) {
      o << "| " << r.acts << " | " << w << " | " << r.mode << " | error: " << r.error << " |||||||||\n";
      continue;
    }
    const double gbps = achieved_gbps(r);
    o << "| " << r.acts << " | " << w << " | " << r.mode << " | "
      << mm(over(r, [](const GenerationStats& g) { return g.tps(); }), "%.1f") << " | "
      << fmt("%.2f", over(r, [](const GenerationStats& g) { return g.ttft_s() * 1e3; }).median) << " | "
      << mm(over(r, [](const GenerationStats& g) { return g.tpot_s() * 1e3; }), "%.3f") << " | "
      << fmt("%.0f", over(r, [](const GenerationStats& g) { return g.prefill_tps(); }).median) << " | "
      << fmt("%.1f", over(r, [](const GenerationStats& g) { return g.decode_tps(); }).median) << " | "
      << fmt("%.3f", over(r, [](const GenerationStats& g) { return g.latency_s(); }).median) << " | "
      << fmt("%.2f", r.weight_bytes_per_token / 1e9) << " | " << fmt("%.0f", gbps) << " | "
      << (m.read_bw_gbps > 0 ? fmt("%.1f", 100.0 * gbps / m.read_bw_gbps) : std::string("–")) << " |\n";
  }
  return o.str();
}

std::string survey_json(const SurveyMeta& m, const std::vector<SurveyRow>& rows) {
  nlohmann::json j;
  j["date"] = m.date;
  j["commit"] = m.commit;
  j["command"] = m.command;
  j["device"] = m.device;
  j["driver"] = m.driver;
  j["model"] = m.model;
  j["prompt_tokens"] = m.prompt_tokens;
  j["new_tokens"] = m.new_tokens;
  j["reps"] = m.reps;
  j["read_bw_gbps"] = m.read_bw_gbps;
  j["rows"] = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json jr;
    jr["acts"] = r.acts;
    jr["weights"] = r.weights;
    jr["group"] = r.group;
    jr["mode"] = r.mode;
    if (!r.error.empty()) {
      jr["error"] = r.error;
      j["rows"].push_back(jr);
      continue;
    }
    auto put = [&](const char* k, Stat s) { jr[k] = {{"median", s.median}, {"min", s.min}, {"max", s.max}}; };
    put("tps", over(r, [](const GenerationStats& g) { return g.tps(); }));
    put("ttft_ms", over(r, [](const GenerationStats& g) { return g.ttft_s() * 1e3; }));
    put("tpot_ms", over(r, [](const GenerationStats& g) { return g.tpot_s() * 1e3; }));
    put("prefill_tps", over(r, [](const GenerationStats& g) { return g.prefill_tps(); }));
    put("decode_tps", over(r, [](const GenerationStats& g) { return g.decode_tps(); }));
    put("latency_s", over(r, [](const GenerationStats& g) { return g.latency_s(); }));
    jr["weight_bytes_per_token"] = r.weight_bytes_per_token;
    jr["decode_bytes_per_token"] = decode_bytes_per_token(r);
    jr["achieved_gbps"] = achieved_gbps(r);
    jr["pct_of_read_bw"] = m.read_bw_gbps > 0 ? 100.0 * achieved_gbps(r) / m.read_bw_gbps : 0.0;
    jr["reps"] = nlohmann::json::array();
    for (const auto& g : r.reps)
      jr["reps"].push_back({{"prefill_s", g.prefill_s}, {"decode_s", g.decode_s}, {"new_tokens", g.new_tokens}});
    j["rows"].push_back(jr);
  }
  return j.dump(2) + "\n";
}

std::string survey_csv(const SurveyMeta& m, const std::vector<SurveyRow>& rows) {
  std::ostringstream o;
  o << "acts,weights,group,mode,tps,tps_min,tps_max,ttft_ms,tpot_ms,prefill_tps,decode_tps,latency_s,"
       "weight_gb,achieved_gbps,pct_of_read_bw,error\n";
  for (const auto& r : rows) {
    o << r.acts << "," << r.weights << "," << r.group << "," << r.mode << ",";
    if (!r.error.empty()) {
      std::string e = r.error;
      std::replace(e.begin(), e.end(), ',', ';');
      std::replace(e.begin(), e.end(), '\n', ' ');
      o << ",,,,,,,,,,," << e << "\n";
      continue;
    }
    const Stat tps = over(r, [](const GenerationStats& g) { return g.tps(); });
    const double gbps = achieved_gbps(r);
    o << tps.median << "," << tps.min << "," << tps.max << ","
      << over(r, [](const GenerationStats& g) { return g.ttft_s() * 1e3; }).median << ","
      << over(r, [](const GenerationStats& g) { return g.tpot_s() * 1e3; }).median << ","
      << over(r, [](const GenerationStats& g) { return g.prefill_tps(); }).median << ","
      << over(r, [](const GenerationStats& g) { return g.decode_tps(); }).median << ","
      << over(r, [](const GenerationStats& g) { return g.latency_s(); }).median << ","
      << r.weight_bytes_per_token / 1e9 << "," << gbps << ","
      << (m.read_bw_gbps > 0 ? 100.0 * gbps / m.read_bw_gbps : 0.0) << ",\n";
  }
  return o.str();
}

StepTimeline summarize_step_timeline(const std::vector<StepOpTimes>& ops) {
  StepTimeline t;
  double prev_end = -1, first = -1, last = 0;
  for (const auto& o : ops) {
    if (!o.stamped) {
      t.unstamped.push_back(o.name);
      continue;
    }
    size_t i = 0;
    while (i < t.rows.size() && t.rows[i].name != o.name) ++i;
    if (i == t.rows.size()) t.rows.push_back(StepTimelineRow{o.name});
    StepTimelineRow& r = t.rows[i];
    const double from = prev_end < 0 ? o.start : prev_end;
    r.launches++;
    r.blocks += o.blocks;
    r.doubled += o.doubled;
    r.resident += o.released - o.start;
    r.wait += o.released - from;
    r.stage += o.staged - o.released;
    r.body += o.end - o.staged;
    r.body_median += (o.end_median > 0 ? o.end_median : o.end) - o.staged;
    r.span += o.end - from;
    if (o.arrived > 0) {
      r.inner++;
      r.arrived += o.arrived - o.released;
      r.reduced += o.reduced - o.arrived;
    }
    if (o.late_end > 0) {
      r.late++;
      r.late_entry += o.late_entry;
      r.late_release += o.late_release;
      r.late_staged += o.late_staged;
      r.late_end += o.late_end;
      double idx = 0;
      for (int b : o.late_blocks) idx += double(b);
      if (!o.late_blocks.empty() && o.blocks > 0) r.late_index += idx / double(o.late_blocks.size()) / o.blocks;
      for (int smid : o.late_sms) r.late_sms[smid]++;
    }
    if (o.last_arrived > 0) {
      r.warps++;
      r.last_released += o.last_released - o.released;
      r.last_arrived += o.last_arrived - o.released;
    }
    prev_end = o.end;
    if (first < 0) first = o.start;
    last = o.end;
  }
  for (auto& r : t.rows) {  // sums to averages per launch (span stays the total: "span x launches")
    const double n = r.launches;
    r.blocks = int(double(r.blocks) / n + 0.5);
    r.doubled /= n;
    r.resident /= n;
    r.wait /= n;
    r.stage /= n;
    r.body /= n;
    r.body_median /= n;
    if (r.inner > 0) {
      r.arrived /= r.inner;
      r.reduced /= r.inner;
    }
    if (r.late > 0) {
      r.late_entry /= r.late;
      r.late_release /= r.late;
      r.late_staged /= r.late;
      r.late_end /= r.late;
      r.late_index /= r.late;
    }
    if (r.warps > 0) {
      r.last_released /= r.warps;
      r.last_arrived /= r.warps;
    }
  }
  t.stamped_span = first < 0 ? 0.0 : last - first;
  return t;
}

std::string step_timeline_markdown(const std::vector<StepOpTimes>& ops, const std::string& label) {
  const StepTimeline t = summarize_step_timeline(ops);
  std::string s = "\nstep timeline (" + label +
                  "; one graph replay, %globaltimer stamps per block, us per launch averaged over launches)\n"
                  "| op | launches | blocks | resident before release | wait | stage (x arrived; last warp released, its x "
                  "arrived; reduced) | body (median block) | "
                  "span | span x launches |\n|---|---|---|---|---|---|---|---|---|\n";
  char b[512];
  for (const auto& r : t.rows) {
    char inner[64] = "";
    if (r.inner > 0 && r.warps > 0)
      std::snprintf(inner, sizeof inner, " (%.2f; %.2f, %.2f; +%.2f)", r.arrived, r.last_released, r.last_arrived,
                    r.reduced);
    else if (r.inner > 0)
      std::snprintf(inner, sizeof inner, " (%.2f, +%.2f)", r.arrived, r.reduced);
    char doubled[48] = "";  // multiprocessors that ran two or more of the op's blocks (per launch)
    if (r.doubled > 0) std::snprintf(doubled, sizeof doubled, " (%.1f SMs x2)", r.doubled);
    std::snprintf(b, sizeof b, "| %s | %d | %d%s | %.2f | %.2f | %.2f%s | %.2f (%.2f) | %.2f | %.1f |\n",
                  r.name.c_str(), r.launches, r.blocks, doubled, r.resident, r.wait, r.stage, inner, r.body,
                  r.body_median, r.span / r.launches, r.span);
    s += b;
  }
  std::snprintf(b, sizeof b, "| stamped span | | | | | | | | %.1f |\n", t.stamped_span);
  s += b;
  bool any_late = false;
  for (const auto& r : t.rows) any_late = any_late || r.late > 0;
  if (any_late) {
    s += "\nthe latest-exiting tenth of each launch's blocks against its median block (us later, averaged over "
         "launches); their mean block index as a fraction of the blocks (0.5: anywhere; the first blocks of a "
         "stream GEMV hold one tile more); the multiprocessors that ran one of them most often (launches with one "
         "of them / launches; by chance about launches / 10)\n"
         "| op | entered | released | staged | exited | block index | most often late (SM: launches) |\n"
         "|---|---|---|---|---|---|---|\n";
    for (const auto& r : t.rows) {
      if (r.late == 0) continue;
      std::vector<std::pair<int, int>> sms(r.late_sms.begin(), r.late_sms.end());
      std::sort(sms.begin(), sms.end(), [](const auto& x, const auto& y) {
        return x.second != y.second ? x.second > y.second : x.first < y.first;
      });
      std::string often;
      for (size_t k = 0; k < sms.size() && k < 6; ++k)
        often += (k ? ", " : "") + std::to_string(sms[k].first) + ": " + std::to_string(sms[k].second) + "/" +
                 std::to_string(r.late);
      std::snprintf(b, sizeof b, "| %s | %+.2f | %+.2f | %+.2f | %+.2f | %.2f | %s |\n", r.name.c_str(), r.late_entry,
                    r.late_release, r.late_staged, r.late_end, r.late_index, often.c_str());
      s += b;
    }
  }
  if (!t.unstamped.empty()) {
    s += "(not stamped, inside the next op's wait:";
    for (size_t i = 0; i < t.unstamped.size(); ++i) s += (i ? ", " : " ") + t.unstamped[i];
    s += ")\n";
  }
  return s;
}

std::vector<EnvSetting> parse_env_settings(const std::string& spec) {
  std::vector<EnvSetting> out;
  size_t start = 0;
  while (true) {
    const size_t end = spec.find(';', start);
    const std::string one = spec.substr(start, end == std::string::npos ? std::string::npos : end - start);
    EnvSetting s;
    std::istringstream words(one);
    std::string w;
    while (words >> w) {
      const size_t eq = w.find('=');
      LB_CHECK(eq != std::string::npos && eq > 0, "--settings: '", w, "' in '", one,
               "' is not VAR=value (a setting is space-separated VAR=value words; settings are separated by ';')");
      const std::string var = w.substr(0, eq);
      LB_CHECK(var.rfind("LOWBIT_", 0) == 0, "--settings: '", var,
               "' is not a LOWBIT_* variable (the CUDA backend's A/B knobs, docs/device.md)");
      for (const auto& [v, _] : s.vars) LB_CHECK(v != var, "--settings: '", var, "' twice in '", one, "'");
      s.vars.emplace_back(var, w.substr(eq + 1));
      s.label += (s.label.empty() ? "" : " ") + w;
    }
    if (s.label.empty()) s.label = "defaults";
    out.push_back(std::move(s));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::vector<std::pair<std::string, std::optional<std::string>>> save_env(const std::vector<EnvSetting>& all) {
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  for (const EnvSetting& s : all)
    for (const auto& kv : s.vars) {
      const std::string& var = kv.first;  // (a name, not a structured binding: clang 14 does not capture those)
      if (std::any_of(saved.begin(), saved.end(), [&](const auto& p) { return p.first == var; })) continue;
      const char* v = std::getenv(var.c_str());
      saved.emplace_back(var, v ? std::optional<std::string>(v) : std::nullopt);
    }
  return saved;
}

void apply_env_setting(const EnvSetting& s, const std::vector<std::pair<std::string, std::optional<std::string>>>& saved) {
  for (const auto& entry : saved) {
    const std::string& var = entry.first;
    const std::optional<std::string>& orig = entry.second;
    const auto it = std::find_if(s.vars.begin(), s.vars.end(), [&](const auto& p) { return p.first == var; });
    if (it != s.vars.end()) setenv(var.c_str(), it->second.c_str(), 1);
    else if (orig) setenv(var.c_str(), orig->c_str(), 1);
    else unsetenv(var.c_str());
  }
}

}  // namespace lowbit

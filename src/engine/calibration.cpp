#include "engine/calibration.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/json_num.h"

namespace lowbit {

namespace {
constexpr const char* kFormatTag = "lowbit-act-calibration";
constexpr int kVersion = 1;

std::string where(const std::string& source) { return source.empty() ? "activation calibration" : source; }
}  // namespace

std::vector<std::string> calibration_names(int n_layers) {
  static const char* parts[kLinearsPerLayer] = {"attention.wq",    "attention.wk",    "attention.wv", "attention.wo",
                                                "feed_forward.w1", "feed_forward.w3", "feed_forward.w2"};
  std::vector<std::string> names;
  for (int l = 0; l < n_layers; ++l)
    for (const char* p : parts) names.push_back("layers." + std::to_string(l) + "." + p);
  names.push_back("output");
  return names;
}

ActCalibration ActCalibration::for_model(const LlamaConfig& c) {
  ActCalibration a;
  a.n_layers = c.n_layers;
  a.dim = c.dim;
  a.hidden_dim = c.hidden_dim;
  a.q_dim = c.q_dim();
  a.vocab_size = c.vocab_size;
  for (const auto& n : calibration_names(c.n_layers)) a.absmax[n] = 0.0f;
  return a;
}

void ActCalibration::observe(const std::string& name, const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));  // NaN never wins std::max here
  float& slot = absmax[name];
  slot = std::max(slot, m);
}

float ActCalibration::range_of(const std::string& name) const {
  auto it = absmax.find(name);
  LB_CHECK(it != absmax.end(), where(source), ": no activation range for '", name, "'");
  LB_CHECK(it->second > 0.0f && std::isfinite(it->second), where(source), ": activation range of '", name, "' is ",
           it->second, "; expected a positive finite absmax");
  return it->second;
}

void ActCalibration::check_model(const LlamaConfig& c) const {
  auto same = [&](const char* what, int have, int want) {
    LB_CHECK(have == want, where(source), ": recorded for a model with ", what, " ", have, ", but this model has ",
             want, " (model '", model, "'); record a calibration for this model with `lowbit calibrate`");
  };
  same("n_layers", n_layers, c.n_layers);
  same("dim", dim, c.dim);
  same("hidden_dim", hidden_dim, c.hidden_dim);
  same("q_dim", q_dim, c.q_dim());
  same("vocab_size", vocab_size, c.vocab_size);
  const std::vector<std::string> names = calibration_names(c.n_layers);
  for (const auto& n : names) range_of(n);
  LB_CHECK(absmax.size() == names.size(), where(source), ": has ", absmax.size(), " activation ranges, expected ",
           names.size(), " (", kLinearsPerLayer, " per layer + output)");
}

nlohmann::json ActCalibration::to_json() const {
  nlohmann::json j;
  j["format"] = kFormatTag;
  j["version"] = kVersion;
  j["model"] = model;
  j["text"] = text;
  j["tokens"] = tokens;
  j["weights"] = weights;
  j["shape"] = {{"n_layers", n_layers}, {"dim", dim}, {"hidden_dim", hidden_dim}, {"q_dim", q_dim},
                {"vocab_size", vocab_size}};
  nlohmann::json r = nlohmann::json::object();
  for (const auto& n : calibration_names(n_layers)) {
    auto it = absmax.find(n);
    if (it != absmax.end()) r[n] = it->second;
  }
  for (const auto& [n, v] : absmax)
    if (!r.contains(n)) r[n] = v;
  j["absmax"] = r;
  return j;
}

ActCalibration ActCalibration::from_json(const nlohmann::json& j, const std::string& source) {
  const std::string w = where(source);
  ActCalibration a;
  a.source = source;
  try {
    LB_CHECK(j.is_object() && j.value("format", "") == kFormatTag, w, ": not a lowbit activation calibration "
             "(expected \"format\": \"", kFormatTag, "\")");
    const int64_t version = j.contains("version") ? json_to_int(j.at("version"), w + " version") : 0;
    LB_CHECK(version == kVersion, w, ": calibration version ", version, ", expected ", kVersion);
    a.model = j.value("model", "");
    a.text = j.value("text", "");
    a.weights = j.value("weights", "");
    a.tokens = j.contains("tokens") ? json_to_int(j.at("tokens"), w + " tokens", 0, INT64_MAX) : 0;
    const auto& s = j.at("shape");
    a.n_layers = int(json_to_int(s.at("n_layers"), w + " shape.n_layers"));
    a.dim = int(json_to_int(s.at("dim"), w + " shape.dim"));
    a.hidden_dim = int(json_to_int(s.at("hidden_dim"), w + " shape.hidden_dim"));
    a.q_dim = int(json_to_int(s.at("q_dim"), w + " shape.q_dim"));
    a.vocab_size = int(json_to_int(s.at("vocab_size"), w + " shape.vocab_size"));
    for (const auto& [n, v] : j.at("absmax").items()) {
      a.absmax[n] = json_to_float(v, w + ": activation range of '" + n + "'");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(w, ": malformed calibration: ", e.what());
  }
  return a;
}

void ActCalibration::save(const std::string& path) const {
  std::ofstream out(path);
  LB_CHECK(out.good(), path, ": cannot write the calibration file");
  out << to_json().dump(1) << "\n";
  LB_CHECK(out.good(), path, ": write failed");
}

ActCalibration ActCalibration::load(const std::string& path) {
  std::ifstream in(path);
  LB_CHECK(in.good(), path, ": cannot read the calibration file");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
  return from_json(j, path);
}

}  // namespace lowbit

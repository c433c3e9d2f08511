// Static activation ranges: for every linear layer, the absmax of its input over a calibration text.
// `lowbit calibrate` records them; --acts int8-static / fp8-static take their per-tensor scale from them.
// Stored as JSON (docs/quality.md):
//   {"format": "lowbit-act-calibration", "version": 1, "model": ..., "text": ..., "tokens": N,
//    "weights": ..., "shape": {"n_layers", "dim", "hidden_dim", "q_dim", "vocab_size"},
//    "absmax": {"layers.0.attention.wq": 3.25, ..., "output": 41.0}}
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/config.h"

namespace lowbit {

// The linear layers whose inputs are recorded, in the forward pass's order: per layer attention.wq, wk,
// wv, wo, feed_forward.w1, w3, w2 ("layers.N." prefixed), then "output" (the classifier, tied or not).
constexpr int kLinearsPerLayer = 7;
std::vector<std::string> calibration_names(int n_layers);

struct ActCalibration {
  std::string source;                 // file it was read from ("" when recorded in memory), for errors
  std::string model, text, weights;   // provenance: model path, calibration text, weight format used
  int64_t tokens = 0;                 // tokens of calibration text run through the model
  int n_layers = 0, dim = 0, hidden_dim = 0, q_dim = 0, vocab_size = 0;  // the model shape it belongs to
  std::map<std::string, float> absmax;  // linear name -> absmax of its input over the text

  // An empty table for this model shape (every name at 0).
  static ActCalibration for_model(const LlamaConfig& c);
  // absmax[name] = max(absmax[name], max |x[i]|) over x[0..n).
  void observe(const std::string& name, const float* x, int64_t n);
  // The recorded range of `name`; throws Error naming the file when absent or not a positive finite number.
  float range_of(const std::string& name) const;
  // Throws Error naming the file when the recorded shape or names differ from this model's.
  void check_model(const LlamaConfig& c) const;

  nlohmann::json to_json() const;
  static ActCalibration from_json(const nlohmann::json& j, const std::string& source);
  void save(const std::string& path) const;
  static ActCalibration load(const std::string& path);
};

}  // namespace lowbit

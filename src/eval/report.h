// The eval table: one row per configuration (weights, activations, KV cache, lm_head, embeddings) with
// perplexity, mean KL to the reference, top-1 agreement and bits per weight; markdown and JSON.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/quality.h"
#include "model/model.h"

namespace lowbit {

struct EvalMeta {
  std::string date, commit, command, device, model, text, reference;
  int64_t text_tokens = 0;   // tokens of the whole text
  int64_t scored = 0;        // positions scored per configuration
  int ctx = 0, stride = 0, windows = 0;
  bool bos = false;
};

struct EvalRow {
  bool reference = false;     // the model as loaded (KL 0 by definition)
  std::string weights;        // weight format ("+search": MX/NVFP4 block-scale search)
  int group = 0;              // group size of group-wise weights (0 = none)
  std::string acts = "none";  // activation format ("none": fp32 activations)
  std::string kv = "none";    // KV-cache format ("none": fp32)
  std::string lm_head = "-";  // "-": as the linear weights leave it (as loaded)
  std::string embeddings = "-";
  double bpw_linear = 0.0;    // bits per weight of the transformer blocks' linear weights
  double bpw_model = 0.0;     // bits per parameter of every weight (embeddings, lm_head, norms included)
  QualityMetrics metrics;
  std::string error;          // non-empty: the row failed
};

// Bits per weight of a model as held now: the blocks' linear layers only, and every weight (a tied
// classifier counted once; norms as fp32).
double linear_bits_per_weight(Model& m);
double model_bits_per_weight(Model& m);

std::string eval_markdown(const EvalMeta& meta, const std::vector<EvalRow>& rows);
std::string eval_json(const EvalMeta& meta, const std::vector<EvalRow>& rows);

}  // namespace lowbit

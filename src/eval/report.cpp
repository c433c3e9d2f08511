#include "eval/report.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace lowbit {

double linear_bits_per_weight(Model& m) {
  double bits = 0.0, n = 0.0;
  m.for_each_linear([&](const std::string& name, QTensor& t) {
    if (name == "output") return;
    bits += 8.0 * double(t.bytes());
    n += double(t.numel());
  });
  return n > 0 ? bits / n : 0.0;
}

double model_bits_per_weight(Model& m) {
  double bits = 0.0, n = 0.0;
  m.for_each_linear([&](const std::string&, QTensor& t) {  // includes an untied output
    bits += 8.0 * double(t.bytes());
    n += double(t.numel());
  });
  const ModelWeights& W = m.weights;
  bits += 8.0 * double(W.tok_embeddings.bytes());
  n += double(W.tok_embeddings.numel());
  double norms = double(W.norm.size());
  for (const auto& L : W.layers) norms += double(L.attn_norm.size() + L.ffn_norm.size());
  bits += 32.0 * norms;
  n += norms;
  return n > 0 ? bits / n : 0.0;
}

namespace {

std::string fmt(const char* f, double v) {
  if (std::isnan(v)) return "nan";  // e.g. a configuration whose logits overflowed
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string window_note(const EvalMeta& m) {
  std::string s = std::to_string(m.windows) + " windows of " + std::to_string(m.ctx) + " positions";
  s += m.bos ? " (BOS + " + std::to_string(m.ctx - 1) + " text tokens)" : " (no BOS)";
  if (m.stride > 0)
    s += ", stride " + std::to_string(m.stride) + " (positions already scored are warm-up context)";
  else
    s += ", non-overlapping";
  return s;
}

std::string weights_cell(const EvalRow& r) {
  std::string w = r.weights;
  if (r.group > 0) w += " g" + std::to_string(r.group);
  return r.reference ? w + " (reference)" : w;
}

}  // namespace

std::string eval_markdown(const EvalMeta& meta, const std::vector<EvalRow>& rows) {
  std::string s;
  s += "model: " + meta.model + "\n";
  s += "text: " + meta.text + " (" + std::to_string(meta.text_tokens) + " tokens; " + window_note(meta) + "; " +
       std::to_string(meta.scored) + " scored positions)\n";
  s += "reference: " + meta.reference + " on " + meta.device + "\n";
  s += "KL = mean over scored positions of KL(P_ref || P_q) in nats; top-1 = argmax agreement with the reference; "
       "bits/w linear = the blocks' linear weights; bits/w model = every weight (embeddings, lm_head, norms)\n\n";
  s += "| weights | acts | kv | lm_head | embeddings | bits/w linear | bits/w model | perplexity | Δppl | mean KL | "
       "top-1 |\n";
  s += "|---|---|---|---|---|---|---|---|---|---|---|\n";
  double ref_ppl = NAN;
  for (const auto& r : rows)
    if (r.reference && r.error.empty()) ref_ppl = r.metrics.perplexity();
  for (const auto& r : rows) {
    s += "| " + weights_cell(r) + " | " + r.acts + " | " + r.kv + " | " + r.lm_head + " | " + r.embeddings + " | ";
    if (!r.error.empty()) {
      s += fmt("%.3f", r.bpw_linear) + " | " + fmt("%.3f", r.bpw_model) + " | error: " + r.error + " | | | |\n";
      continue;
    }
    const double ppl = r.metrics.perplexity();
    const double dppl = std::isnan(ref_ppl) ? NAN : 100.0 * (ppl / ref_ppl - 1.0);
    s += fmt("%.3f", r.bpw_linear) + " | " + fmt("%.3f", r.bpw_model) + " | " + fmt("%.4f", ppl) + " | " +
         (r.reference ? std::string("-") : fmt("%+.2f%%", dppl)) + " | " + fmt("%.3e", r.metrics.mean_kl()) + " | " +
         fmt("%.2f%%", 100.0 * r.metrics.top1()) + " |\n";
  }
  return s;
}

std::string eval_json(const EvalMeta& meta, const std::vector<EvalRow>& rows) {
  nlohmann::json j;
  j["meta"] = {{"date", meta.date},       {"commit", meta.commit},   {"command", meta.command},
               {"device", meta.device},   {"model", meta.model},     {"text", meta.text},
               {"reference", meta.reference}, {"text_tokens", meta.text_tokens}, {"scored_positions", meta.scored},
               {"ctx", meta.ctx},         {"stride", meta.stride},   {"windows", meta.windows},
               {"bos", meta.bos},         {"kl_units", "nats"}};
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json o;
    o["reference"] = r.reference;
    o["weights"] = r.weights;
    o["group"] = r.group;
    o["acts"] = r.acts;
    o["kv"] = r.kv;
    o["lm_head"] = r.lm_head;
    o["embeddings"] = r.embeddings;
    o["bits_per_weight_linear"] = num(r.bpw_linear);
    o["bits_per_weight_model"] = num(r.bpw_model);
    o["positions"] = r.metrics.positions;
    o["perplexity"] = r.error.empty() ? num(r.metrics.perplexity()) : nullptr;
    o["kl_mean"] = r.error.empty() ? num(r.metrics.mean_kl()) : nullptr;
    o["kl_max"] = r.error.empty() ? num(r.metrics.kl_max) : nullptr;
    o["top1"] = r.error.empty() ? num(r.metrics.top1()) : nullptr;
    o["error"] = r.error;
    arr.push_back(o);
  }
  j["rows"] = arr;
  return j.dump(1) + "\n";
}

}  // namespace lowbit

#include "model/quantize_model.h"

#include <vector>

#include "util/error.h"
#include "util/strings.h"
#include "util/progress.h"

namespace lowbit {

std::vector<std::string> parse_keep_list(const std::string& s) { return split_commas(s); }

bool name_matches(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (!p.empty() && p.back() == '*') {
      if (name.compare(0, p.size() - 1, p, 0, p.size() - 1) == 0) return true;
    } else if (name == p) {
      return true;
    }
  }
  return false;
}

namespace {
// Re-encodes one tensor: decode to fp32 row by row, quantize to the new format.
void convert(QTensor& t, const std::string& name, Format fmt, const QuantOptions& q) {
  if (t.fmt == fmt && format_info(fmt).scheme == ScaleScheme::None) return;
  std::vector<float> w = dequantize(t);
  t = quantize(w.data(), t.rows, t.cols, fmt, q, name);
}
}  // namespace

int quantize_model(Model& model, const ModelQuantOptions& opt) {
  LB_CHECK(format_info(opt.weights).weight_ok, format_name(opt.weights), " is not a weight format");
  std::vector<std::pair<std::string, QTensor*>> todo;
  model.for_each_linear([&](const std::string& name, QTensor& t) {
    if (name == "output") return;  // lm_head handled below
    if (!name_matches(name, opt.keep)) todo.push_back({name, &t});
  });
  int converted = 0;
  Progress bar("quantize " + std::string(format_name(opt.weights)), int64_t(todo.size()), opt.progress);
  for (size_t i = 0; i < todo.size(); ++i) {
    convert(*todo[i].second, todo[i].first, opt.weights, opt.quant);
    ++converted;
    bar.update(int64_t(i + 1), todo[i].first);
  }
  bar.finish();
  ModelWeights& W = model.weights;
  if (opt.lm_head && !name_matches("output", opt.keep)) {
    if (model.config.tie_embeddings) {
      // untie: the classifier gets its own quantized copy, the embedding table stays as it is
      W.output = W.tok_embeddings;
      model.config.tie_embeddings = false;
    }
    convert(W.output, "output", *opt.lm_head, opt.quant);
    ++converted;
  }
  if (opt.embeddings && !name_matches("tok_embeddings", opt.keep)) {
    const bool tied = model.config.tie_embeddings;
    convert(W.tok_embeddings, "tok_embeddings", *opt.embeddings, opt.quant);
    if (tied) W.output = W.tok_embeddings;  // tied: the classifier is the same (now quantized) table
    ++converted;
  }
  return converted;
}

}  // namespace lowbit

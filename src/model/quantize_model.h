// Whole-model quantization: converts the linear weights (and optionally lm_head / embeddings) of a loaded
// model to a registry format, in place.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "formats/qtensor.h"
#include "model/model.h"

namespace lowbit {

struct ModelQuantOptions {
  Format weights = Format::BF16;
  QuantOptions quant;                    // group, scale rule, HQQ parameters
  std::vector<std::string> keep;         // tensors left as they are: exact names or prefixes ending in '*'
  std::optional<Format> lm_head;         // none = lm_head kept as loaded (the survey's convention)
  std::optional<Format> embeddings;      // none = token embeddings kept as loaded
  bool progress = true;
};

// Parses "a,b,c*" into a keep list.
std::vector<std::string> parse_keep_list(const std::string& s);
bool name_matches(const std::string& name, const std::vector<std::string>& patterns);

// Quantizes in place; returns the number of tensors converted. Throws Error naming the tensor when a
// format cannot represent its shape (e.g. a group size that does not fit).
int quantize_model(Model& model, const ModelQuantOptions& opt);

}  // namespace lowbit

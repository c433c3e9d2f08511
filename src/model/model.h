// A loaded Llama model: config + weights (each linear weight a QTensor in any registry format).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/qtensor.h"
#include "model/config.h"

namespace lowbit {

struct LayerWeights {
  std::vector<float> attn_norm;  // [dim]
  QTensor wq;                    // [n_heads*head_dim, dim]
  QTensor wk;                    // [n_kv_heads*head_dim, dim]
  QTensor wv;                    // [n_kv_heads*head_dim, dim]
  QTensor wo;                    // [dim, n_heads*head_dim]
  std::vector<float> ffn_norm;   // [dim]
  QTensor w1;                    // gate [hidden_dim, dim]
  QTensor w3;                    // up   [hidden_dim, dim]
  QTensor w2;                    // down [dim, hidden_dim]
};

struct ModelWeights {
  QTensor tok_embeddings;        // [vocab, dim]
  std::vector<LayerWeights> layers;
  std::vector<float> norm;       // [dim]
  QTensor output;                // [vocab, dim]; shares tok_embeddings' buffers when tied
};

// Where the model came from, for `info` and errors.
enum class ModelSource { HfSafetensors, Gguf, Llama2c, Synthetic, LowbitQuantized };

// Weights that are not materialised on the host: a backend generates random codes of this format
// directly where they will live (speed runs of synthetic presets too large for host memory).
struct DeferredWeights {
  Format linear = Format::BF16;          // the blocks' linear layers
  int group = 0;                         // group size (0 = the format's default)
  Format lm_head = Format::BF16;         // the classifier
  Format embeddings = Format::BF16;      // the token embedding table
  uint64_t seed = 0;
};

struct Model {
  LlamaConfig config;
  std::optional<DeferredWeights> deferred;  // set: `weights` is empty and the backend generates them
  std::optional<Format> default_acts;       // activation format recorded by `lowbit quantize --acts`
  ModelWeights weights;
  ModelSource source = ModelSource::Synthetic;
  std::string path;             // file/dir it was loaded from, or "synthetic:<preset>"
  std::string tokenizer_path;   // tokenizer found next to / inside the model ("" when none)
  std::vector<std::string> source_types;  // type of each tensor as stored in the file (for `info`)
  size_t source_weight_bytes = 0;          // bytes of all tensors as stored in the file (or to be generated)
  std::vector<std::shared_ptr<const void>> keep_alive;  // memory maps the weights point into

  // Calls f(name, tensor) for every linear weight (wq..w2 of every layer, then output); `output` is
  // skipped when tied (it aliases the embeddings).
  template <typename F>
  void for_each_linear(F&& f);
  // Total bytes of all weights as held in memory now.
  size_t weight_bytes() const;
};

template <typename F>
void Model::for_each_linear(F&& f) {
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    auto& L = weights.layers[i];
    std::string p = "layers." + std::to_string(i) + ".";
    f(p + "attention.wq", L.wq); f(p + "attention.wk", L.wk); f(p + "attention.wv", L.wv);
    f(p + "attention.wo", L.wo); f(p + "feed_forward.w1", L.w1); f(p + "feed_forward.w3", L.w3);
    f(p + "feed_forward.w2", L.w2);
  }
  if (!config.tie_embeddings) f(std::string("output"), weights.output);
}

}  // namespace lowbit

#include "model/model.h"

namespace lowbit {

size_t Model::weight_bytes() const {
  size_t n = weights.tok_embeddings.bytes() + weights.norm.size() * sizeof(float);
  for (const auto& L : weights.layers)
    n += L.wq.bytes() + L.wk.bytes() + L.wv.bytes() + L.wo.bytes() + L.w1.bytes() + L.w2.bytes() + L.w3.bytes() +
         (L.attn_norm.size() + L.ffn_norm.size()) * sizeof(float);
  // A tied output shares the embedding's buffers.
  if (!config.tie_embeddings) n += weights.output.bytes();
  return n;
}

}  // namespace lowbit

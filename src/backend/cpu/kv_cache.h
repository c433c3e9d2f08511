// The CPU static KV cache: [n_layers, max_seq, kv_dim] keys and values in fp32.
// With a KV format (int8, fp8-e4m3, int4, ...), each head's vector is quantized when written and the
// cache keeps the dequantized values: numerically the same as storing the codes, which is what quality
// evaluation needs on the CPU (the GPU keeps codes to save memory traffic).
#pragma once
#include <optional>
#include <vector>

#include "formats/format.h"

namespace lowbit {

class KvCache {
 public:
  KvCache(int n_layers, int max_seq, int kv_dim, std::optional<Format> fmt, int head_dim = 0);
  // k, v: [kv_dim] for one position.
  void write(int layer, int pos, const float* k, const float* v);
  // Pointer to head `h`'s key / value ([head_dim]) at (layer, pos). `scratch` is unused for fp32 storage.
  const float* key(int layer, int pos, int h, float* scratch) const { return at(k_, layer, pos) + size_t(h) * head_dim_; }
  const float* value(int layer, int pos, int h, float* scratch) const { return at(v_, layer, pos) + size_t(h) * head_dim_; }
  std::optional<Format> format() const { return fmt_; }

 private:
  const float* at(const std::vector<float>& c, int layer, int pos) const {
    return c.data() + (size_t(layer) * max_seq_ + pos) * kv_dim_;
  }
  void store(std::vector<float>& c, int layer, int pos, const float* x);
  int max_seq_, kv_dim_, head_dim_;
  std::optional<Format> fmt_;
  std::vector<float> k_, v_;
};

}  // namespace lowbit

// Small model files written by the tests: a tiny llama GGUF and a Hugging Face directory, built from a
// synthetic model so every loader can be checked against the same weights.
#pragma once
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gguf_builder.h"
#include "io/gguf.h"
#include "io/loader.h"
#include "io/safetensors.h"
#include "io_test_util.h"
#include "util/half.h"

namespace lowbit::test {

// The tiny preset with f32 weights.
inline Model tiny_f32(uint64_t seed = 7) {
  LoadOptions o;
  o.synthetic_format = Format::F32;
  o.seed = seed;
  o.progress = false;
  return load_model("synthetic:tiny", o);
}

inline std::vector<float> floats_of(const QTensor& t) {
  std::vector<float> f(size_t(t.numel()));
  std::memcpy(f.data(), t.codes.data, f.size() * 4);
  return f;
}

// Q8_0 blocks of x (a fixture producer; decoding is what the tests check).
inline std::vector<uint8_t> quantize_q8_0(const std::vector<float>& x) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const uint16_t dh = f32_to_f16(amax / 127.0f);
    const float d = f16_to_f32(dh);
    out.push_back(uint8_t(dh & 0xff));
    out.push_back(uint8_t(dh >> 8));
    for (size_t j = 0; j < 32; ++j) out.push_back(uint8_t(int8_t(d > 0 ? std::lround(x[b + j] / d) : 0)));
  }
  return out;
}

struct TinyGgufOptions {
  uint32_t linear_type = 0;  // ggml type of the linear weights: F32 (0) or Q8_0 (8)
  bool tied = false;
  float rope_theta = 10000.0f;
  uint32_t claimed_layers = 0;  // > 0: llama.block_count says this many layers (the tensors stay as they are)
  // Called with (canonical tensor name, ggml name, dims, type, bytes) before each tensor is added; may change
  // them (shape and type faults). Return false to leave the tensor out.
  std::function<bool(const std::string&, std::string&, std::vector<uint64_t>&, uint32_t&, std::vector<uint8_t>&)> edit;
  std::function<void(GgufBuilder&)> extra_kv;
};

inline std::vector<uint8_t> tiny_gguf(const Model& m, const TinyGgufOptions& o = {}) {
  const LlamaConfig& c = m.config;
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.embedding_length", uint32_t(c.dim));
  b.kv_u32("llama.feed_forward_length", uint32_t(c.hidden_dim));
  b.kv_u32("llama.block_count", o.claimed_layers ? o.claimed_layers : uint32_t(c.n_layers));
  b.kv_u32("llama.attention.head_count", uint32_t(c.n_heads));
  b.kv_u32("llama.attention.head_count_kv", uint32_t(c.n_kv_heads));
  b.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  b.kv_f32("llama.rope.freq_base", o.rope_theta);
  b.kv_u32("llama.context_length", 512);
  b.kv_u32("llama.rope.dimension_count", uint32_t(c.head_dim));
  std::vector<std::string> tokens;
  for (int i = 0; i < c.vocab_size; ++i) tokens.push_back("t" + std::to_string(i));
  tokens[5] = "<|im_end|>";
  b.kv_str_array("tokenizer.ggml.tokens", tokens);
  b.kv_u32("tokenizer.ggml.bos_token_id", 1);
  b.kv_u32("tokenizer.ggml.eos_token_id", 2);
  if (o.extra_kv) o.extra_kv(b);
  auto add = [&](const std::string& canonical, std::string name, const std::vector<float>& v, int64_t rows,
                 int64_t cols, bool linear) {
    std::vector<uint64_t> dims = rows > 0 ? std::vector<uint64_t>{uint64_t(cols), uint64_t(rows)}
                                          : std::vector<uint64_t>{uint64_t(cols)};
    uint32_t type = linear ? o.linear_type : 0;
    std::vector<uint8_t> bytes = type == 8 ? quantize_q8_0(v) : bytes_of(v);
    if (o.edit && !o.edit(canonical, name, dims, type, bytes)) return;
    b.tensor(name, dims, type, bytes);
  };
  const auto& w = m.weights;
  add("tok_embeddings", "token_embd.weight", floats_of(w.tok_embeddings), c.vocab_size, c.dim, true);
  for (int i = 0; i < c.n_layers; ++i) {
    const auto& L = w.layers[size_t(i)];
    const std::string p = "blk." + std::to_string(i) + ".", q = "layers." + std::to_string(i) + ".";
    add(q + "attention_norm", p + "attn_norm.weight", L.attn_norm, 0, c.dim, false);
    add(q + "attention.wq", p + "attn_q.weight", floats_of(L.wq), L.wq.rows, L.wq.cols, true);
    add(q + "attention.wk", p + "attn_k.weight", floats_of(L.wk), L.wk.rows, L.wk.cols, true);
    add(q + "attention.wv", p + "attn_v.weight", floats_of(L.wv), L.wv.rows, L.wv.cols, true);
    add(q + "attention.wo", p + "attn_output.weight", floats_of(L.wo), L.wo.rows, L.wo.cols, true);
    add(q + "ffn_norm", p + "ffn_norm.weight", L.ffn_norm, 0, c.dim, false);
    add(q + "feed_forward.w1", p + "ffn_gate.weight", floats_of(L.w1), L.w1.rows, L.w1.cols, true);
    add(q + "feed_forward.w2", p + "ffn_down.weight", floats_of(L.w2), L.w2.rows, L.w2.cols, true);
    add(q + "feed_forward.w3", p + "ffn_up.weight", floats_of(L.w3), L.w3.rows, L.w3.cols, true);
  }
  add("norm", "output_norm.weight", w.norm, 0, c.dim, false);
  if (!o.tied) add("output", "output.weight", floats_of(w.output), c.vocab_size, c.dim, true);
  return b.build();
}

inline nlohmann::json hf_config_json(const LlamaConfig& c) {
  return {{"model_type", "llama"},        {"hidden_size", c.dim},         {"intermediate_size", c.hidden_dim},
          {"num_hidden_layers", c.n_layers}, {"num_attention_heads", c.n_heads},
          {"num_key_value_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_seq_len}, {"rope_theta", c.rope_theta}, {"rms_norm_eps", c.norm_eps},
          {"tie_word_embeddings", c.tie_embeddings}, {"bos_token_id", c.bos_id}, {"eos_token_id", c.eos_id}};
}

inline std::string hf_tensor_name(const std::string& canonical) {
  if (canonical == "tok_embeddings") return "model.embed_tokens.weight";
  if (canonical == "norm") return "model.norm.weight";
  if (canonical == "output") return "lm_head.weight";
  const size_t dot = canonical.find('.', 7);
  const std::string n = canonical.substr(7, dot - 7), part = canonical.substr(dot + 1);
  const std::pair<const char*, const char*> parts[] = {
      {"attention_norm", "input_layernorm"}, {"attention.wq", "self_attn.q_proj"}, {"attention.wk", "self_attn.k_proj"},
      {"attention.wv", "self_attn.v_proj"}, {"attention.wo", "self_attn.o_proj"},
      {"ffn_norm", "post_attention_layernorm"}, {"feed_forward.w1", "mlp.gate_proj"},
      {"feed_forward.w2", "mlp.down_proj"}, {"feed_forward.w3", "mlp.up_proj"}};
  for (const auto& [c, h] : parts)
    if (part == c) return "model.layers." + n + "." + h + ".weight";
  return canonical;
}

// Writes `m` (plain formats) as a Hugging Face directory: config.json plus one or `shards` safetensors files
// (with model.safetensors.index.json when sharded). `edit` may rename/reshape/drop tensors (return false).
struct HfDirOptions {
  int shards = 1;
  std::function<bool(std::string& name, std::string& dtype, std::vector<int64_t>& shape)> edit;
};

inline void write_hf_dir(const std::string& dir, const Model& m, const HfDirOptions& o = {}) {
  const LlamaConfig& c = m.config;
  write_file(dir + "/config.json", hf_config_json(c).dump(2));
  struct Item {
    std::string name, dtype;
    std::vector<int64_t> shape;
    const void* data;
    size_t nbytes;
  };
  std::vector<Item> items;
  auto dtype_of = [](Format f) { return f == Format::F32 ? "F32" : f == Format::BF16 ? "BF16" : "F16"; };
  auto mat = [&](const std::string& canonical, const QTensor& t) {
    items.push_back({hf_tensor_name(canonical), dtype_of(t.fmt), {t.rows, t.cols}, t.codes.data, t.codes.size});
  };
  auto vec = [&](const std::string& canonical, const std::vector<float>& v) {
    items.push_back({hf_tensor_name(canonical), "F32", {int64_t(v.size())}, v.data(), v.size() * 4});
  };
  const auto& w = m.weights;
  mat("tok_embeddings", w.tok_embeddings);
  for (int i = 0; i < c.n_layers; ++i) {
    const auto& L = w.layers[size_t(i)];
    const std::string q = "layers." + std::to_string(i) + ".";
    vec(q + "attention_norm", L.attn_norm);
    mat(q + "attention.wq", L.wq);
    mat(q + "attention.wk", L.wk);
    mat(q + "attention.wv", L.wv);
    mat(q + "attention.wo", L.wo);
    vec(q + "ffn_norm", L.ffn_norm);
    mat(q + "feed_forward.w1", L.w1);
    mat(q + "feed_forward.w2", L.w2);
    mat(q + "feed_forward.w3", L.w3);
  }
  vec("norm", w.norm);
  if (!c.tie_embeddings) mat("output", w.output);

  std::vector<SafeTensorsWriter> writers(size_t(o.shards));
  std::vector<std::vector<uint8_t>> scratch;  // data for tensors an edit made larger than the original
  scratch.reserve(items.size());
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t k = 0; k < items.size(); ++k) {
    Item it = items[k];
    if (o.edit && !o.edit(it.name, it.dtype, it.shape)) continue;
    int64_t numel = 1;
    for (auto d : it.shape) numel *= d;
    const size_t nbytes = size_t(numel) * safetensors_dtype_size(it.dtype);
    const void* data = it.data;
    if (nbytes > it.nbytes) data = scratch.emplace_back(nbytes, 0).data();
    const size_t shard = k * size_t(o.shards) / items.size();
    writers[shard].add(it.name, it.dtype, it.shape, data, nbytes);
    char fname[64];
    std::snprintf(fname, sizeof(fname), "model-%05zu-of-%05d.safetensors", shard + 1, o.shards);
    weight_map[it.name] = o.shards == 1 ? "model.safetensors" : fname;
  }
  if (o.shards == 1) {
    writers[0].write(dir + "/model.safetensors");
    return;
  }
  for (int s = 0; s < o.shards; ++s) {
    char fname[64];
    std::snprintf(fname, sizeof(fname), "model-%05d-of-%05d.safetensors", s + 1, o.shards);
    writers[size_t(s)].write(dir + "/" + fname);
  }
  write_file(dir + "/model.safetensors.index.json",
             nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2));
}

}  // namespace lowbit::test

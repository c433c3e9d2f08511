// Llama-family hyper-parameters, from HF config.json, GGUF metadata, llama2.c headers or a named preset.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace lowbit {

struct RopeScaling {
  std::string type;                 // "" (none) or "llama3"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position = 8192;
};

struct LlamaConfig {
  std::string arch = "llama";
  int dim = 0;              // hidden size
  int hidden_dim = 0;       // FFN intermediate size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;       // GQA: n_heads % n_kv_heads == 0
  int head_dim = 0;         // usually dim / n_heads
  int vocab_size = 0;
  int max_seq_len = 2048;   // positions the model supports (caches are sized by the run, not by this)
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  // true: rotate pairs (x[2i], x[2i+1]) (Meta/llama2.c/GGUF layout);
  // false: rotate (x[i], x[i + head_dim/2]) (HF layout).
  bool rope_interleaved = true;
  float norm_eps = 1e-5f;
  bool tie_embeddings = false;
  int bos_id = 1;
  int eos_id = 2;
  std::vector<int> stop_ids;  // generation stops at any of these (eos included)

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Throws Error (prefixed by `source`) when values are missing or inconsistent.
  void validate(const std::string& source) const;
  // Parameter count (embeddings + layers + norm + untied output).
  int64_t param_count() const;
  // The rotary inverse frequencies for each of head_dim/2 pairs, with llama3 scaling applied.
  std::vector<float> rope_inv_freq() const;
};

// From an HF config.json document; `source` names the file in errors.
LlamaConfig config_from_hf_json(const nlohmann::json& j, const std::string& source);

// lowbit's own JSON form of a config (every field, used by the quantized file format) and back.
nlohmann::json config_to_json(const LlamaConfig& c);
LlamaConfig config_from_json(const nlohmann::json& j, const std::string& source);

// Named presets: "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b",
// plus small test presets. Throws Error listing the names when unknown.
LlamaConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace lowbit

#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "util/json_num.h"

#include "util/error.h"

namespace lowbit {

using nlohmann::json;

void LlamaConfig::validate(const std::string& source) const {
  auto positive = [&](int v, const char* what) {
    LB_CHECK(v > 0, source, ": ", what, " must be positive, got ", v);
  };
  positive(dim, "dim (hidden_size)");
  positive(hidden_dim, "hidden_dim (intermediate_size)");
  positive(n_layers, "n_layers");
  positive(n_heads, "n_heads");
  positive(n_kv_heads, "n_kv_heads");
  positive(head_dim, "head_dim");
  positive(vocab_size, "vocab_size");
  positive(max_seq_len, "max_seq_len");
  LB_CHECK(n_heads % n_kv_heads == 0, source, ": n_heads (", n_heads, ") is not a multiple of n_kv_heads (",
           n_kv_heads, ")");
  // Rotary embedding rotates pairs of dimensions.
  LB_CHECK(head_dim % 2 == 0, source, ": head_dim must be even for rotary embeddings, got ", head_dim);
  LB_CHECK(std::isfinite(rope_theta) && rope_theta > 0, source, ": rope_theta must be positive, got ", rope_theta);
  LB_CHECK(std::isfinite(norm_eps) && norm_eps > 0, source, ": norm_eps must be positive, got ", norm_eps);
  if (!rope_scaling.type.empty()) {
    LB_CHECK(rope_scaling.type == "llama3", source, ": rope scaling type '", rope_scaling.type,
             "' is not supported (only llama3)");
    LB_CHECK(rope_scaling.factor >= 1.0f, source, ": rope scaling factor must be >= 1, got ", rope_scaling.factor);
    LB_CHECK(rope_scaling.low_freq_factor > 0 && rope_scaling.high_freq_factor > rope_scaling.low_freq_factor,
             source, ": rope scaling needs 0 < low_freq_factor < high_freq_factor, got ",
             rope_scaling.low_freq_factor, " and ", rope_scaling.high_freq_factor);
    LB_CHECK(rope_scaling.original_max_position > 0, source,
             ": rope scaling original_max_position_embeddings must be positive, got ",
             rope_scaling.original_max_position);
  }
  auto token_ok = [&](int id) { return id >= 0 && id < vocab_size; };
  LB_CHECK(bos_id < 0 || token_ok(bos_id), source, ": bos id ", bos_id, " is outside the vocabulary (", vocab_size,
           ")");
  LB_CHECK(eos_id < 0 || token_ok(eos_id), source, ": eos id ", eos_id, " is outside the vocabulary (", vocab_size,
           ")");
  for (int s : stop_ids)
    LB_CHECK(token_ok(s), source, ": stop id ", s, " is outside the vocabulary (", vocab_size, ")");
}

int64_t LlamaConfig::param_count() const {
  const int64_t d = dim, q = q_dim(), kv = kv_dim(), h = hidden_dim, v = vocab_size;
  const int64_t per_layer = 2 * d            // attention and ffn norms
                            + d * q + q * d  // wq, wo
                            + 2 * d * kv     // wk, wv
                            + 3 * d * h;     // w1, w2, w3
  return v * d + int64_t(n_layers) * per_layer + d + (tie_embeddings ? 0 : v * d);
}

std::vector<float> LlamaConfig::rope_inv_freq() const {
  const int half = head_dim / 2;
  std::vector<float> inv(size_t(std::max(half, 0)));
  const double pi = 3.14159265358979323846;
  const RopeScaling& s = rope_scaling;
  for (int i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(double(rope_theta), double(2 * i) / double(head_dim));
    if (s.type == "llama3") {
      // Llama 3.1 frequency scaling: long wavelengths are divided by `factor`, short ones kept, and the band
      // between interpolated smoothly (as HF's _compute_llama3_parameters).
      const double old_ctx = s.original_max_position;
      const double low_freq_wavelen = old_ctx / s.low_freq_factor;
      const double high_freq_wavelen = old_ctx / s.high_freq_factor;
      const double wavelen = 2 * pi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
    inv[size_t(i)] = float(f);
  }
  return inv;
}

namespace {

int get_int_field(const json& j, const char* key, const std::string& source, std::optional<int> def = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return *def;
    fail(source, ": '", key, "' is missing");
  }
  return int(json_to_int(*it, source + ": '" + key + "'"));
}

float get_num_field(const json& j, const char* key, const std::string& source, std::optional<float> def = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return *def;
    fail(source, ": '", key, "' is missing");
  }
  return json_to_float(*it, source + ": '" + key + "'");
}

bool get_bool_field(const json& j, const char* key, const std::string& source, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(source, ": '", key, "' must be true or false, got ", it->dump());
  return it->get<bool>();
}

// bos/eos: an integer, a list of integers or null.
std::vector<int> get_token_ids(const json& j, const char* key, const std::string& source) {
  std::vector<int> ids;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ids;
  auto one = [&](const json& v) {
    ids.push_back(int(json_to_int(v, source + ": '" + key + "' (a token id or a list of them)", 0, INT32_MAX)));
  };
  if (it->is_array()) {
    for (const auto& v : *it) one(v);
  } else {
    one(*it);
  }
  return ids;
}

}  // namespace

LlamaConfig config_from_hf_json(const json& j, const std::string& source) {
  LB_CHECK(j.is_object(), source, ": expected a JSON object");
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) {
    std::string mt = it->get<std::string>();
    LB_CHECK(mt == "llama", source, ": model_type '", mt, "' is not supported (lowbit runs the llama architecture)");
  }
  if (auto it = j.find("hidden_act"); it != j.end() && it->is_string())
    LB_CHECK(it->get<std::string>() == "silu", source, ": hidden_act '", it->get<std::string>(),
             "' is not supported (llama uses silu)");
  LB_CHECK(!get_bool_field(j, "attention_bias", source, false), source,
           ": attention_bias = true is not supported (llama projections have no bias)");
  LB_CHECK(!get_bool_field(j, "mlp_bias", source, false), source,
           ": mlp_bias = true is not supported (llama projections have no bias)");

  LlamaConfig c;
  c.arch = "llama";
  c.dim = get_int_field(j, "hidden_size", source);
  c.hidden_dim = get_int_field(j, "intermediate_size", source);
  c.n_layers = get_int_field(j, "num_hidden_layers", source);
  c.n_heads = get_int_field(j, "num_attention_heads", source);
  c.n_kv_heads = get_int_field(j, "num_key_value_heads", source, c.n_heads);
  LB_CHECK(c.n_heads > 0, source, ": num_attention_heads must be positive, got ", c.n_heads);
  c.head_dim = get_int_field(j, "head_dim", source, c.dim / c.n_heads);
  c.vocab_size = get_int_field(j, "vocab_size", source);
  c.max_seq_len = get_int_field(j, "max_position_embeddings", source, 2048);
  c.rope_theta = float(get_num_field(j, "rope_theta", source, 10000.0));
  c.norm_eps = float(get_num_field(j, "rms_norm_eps", source, 1e-6));
  c.tie_embeddings = get_bool_field(j, "tie_word_embeddings", source, false);
  // HF checkpoints keep q/k in the rotate_half layout (pairs i and i + head_dim/2).
  c.rope_interleaved = false;

  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    const json& rs = *it;
    LB_CHECK(rs.is_object(), source, ": 'rope_scaling' must be an object or null");
    std::string type;
    if (auto t = rs.find("rope_type"); t != rs.end() && t->is_string()) type = t->get<std::string>();
    else if (auto t2 = rs.find("type"); t2 != rs.end() && t2->is_string()) type = t2->get<std::string>();
    if (type == "llama3") {
      const std::string where = source + " rope_scaling";
      c.rope_scaling.type = "llama3";
      c.rope_scaling.factor = float(get_num_field(rs, "factor", where));
      c.rope_scaling.low_freq_factor = float(get_num_field(rs, "low_freq_factor", where, 1.0));
      c.rope_scaling.high_freq_factor = float(get_num_field(rs, "high_freq_factor", where, 4.0));
      c.rope_scaling.original_max_position = get_int_field(rs, "original_max_position_embeddings", where, 8192);
    } else if (!type.empty() && type != "default") {
      fail(source, ": rope_scaling type '", type, "' is not supported (only llama3)");
    }
  }

  std::vector<int> bos = get_token_ids(j, "bos_token_id", source);
  std::vector<int> eos = get_token_ids(j, "eos_token_id", source);
  c.bos_id = bos.empty() ? -1 : bos[0];
  c.eos_id = eos.empty() ? -1 : eos[0];
  c.stop_ids = eos;
  c.validate(source);
  return c;
}

// ---- presets ------------------------------------------------------------------------------------

namespace {

LlamaConfig llama3_family(int dim, int layers, int heads, int hidden, bool tie, float rope_factor, int head_dim) {
  LlamaConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = 8;
  c.head_dim = head_dim;
  c.vocab_size = 128256;
  c.max_seq_len = 131072;
  c.rope_theta = 500000.0f;
  c.rope_scaling = RopeScaling{"llama3", rope_factor, 1.0f, 4.0f, 8192};
  c.rope_interleaved = false;
  c.norm_eps = 1e-5f;
  c.tie_embeddings = tie;
  c.bos_id = 128000;
  c.eos_id = 128001;
  c.stop_ids = {128001, 128008, 128009};
  return c;
}

// Small shapes for fast tests (not real models): GQA, untied output, no rope scaling.
LlamaConfig test_preset(int dim, int hidden, int layers, int heads, int kv_heads, int vocab) {
  LlamaConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.vocab_size = vocab;
  c.max_seq_len = 2048;
  c.rope_theta = 10000.0f;
  c.rope_interleaved = false;
  c.norm_eps = 1e-5f;
  c.tie_embeddings = false;
  c.bos_id = 1;
  c.eos_id = 2;
  c.stop_ids = {2};
  return c;
}

const std::map<std::string, LlamaConfig>& presets() {
  static const std::map<std::string, LlamaConfig> p = {
      {"llama-3.1-8b", llama3_family(4096, 32, 32, 14336, false, 8.0f, 128)},
      {"llama-3.1-70b", llama3_family(8192, 80, 64, 28672, false, 8.0f, 128)},
      {"llama-3.1-405b", llama3_family(16384, 126, 128, 53248, false, 8.0f, 128)},
      {"llama-3.2-1b", llama3_family(2048, 16, 32, 8192, true, 32.0f, 64)},
      {"llama-3.2-3b", llama3_family(3072, 28, 24, 8192, true, 32.0f, 128)},
      {"tiny", test_preset(64, 160, 2, 4, 2, 256)},
      {"small", test_preset(256, 704, 4, 8, 2, 1024)},
  };
  return p;
}

}  // namespace

LlamaConfig preset_config(const std::string& name) {
  auto it = presets().find(name);
  if (it == presets().end()) {
    std::string names;
    for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
    fail("unknown model preset '", name, "' (known: ", names, ")");
  }
  LlamaConfig c = it->second;
  c.validate("preset " + name);
  return c;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> n;
  for (const auto& [k, v] : presets()) n.push_back(k);
  return n;
}

// ---- lowbit's own JSON form of the config -------------------------------------------------------

json config_to_json(const LlamaConfig& c) {
  json j;
  j["arch"] = c.arch;
  j["dim"] = c.dim;
  j["hidden_dim"] = c.hidden_dim;
  j["n_layers"] = c.n_layers;
  j["n_heads"] = c.n_heads;
  j["n_kv_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_seq_len"] = c.max_seq_len;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = {{"type", c.rope_scaling.type},
                       {"factor", c.rope_scaling.factor},
                       {"low_freq_factor", c.rope_scaling.low_freq_factor},
                       {"high_freq_factor", c.rope_scaling.high_freq_factor},
                       {"original_max_position", c.rope_scaling.original_max_position}};
  j["rope_interleaved"] = c.rope_interleaved;
  j["norm_eps"] = c.norm_eps;
  j["tie_embeddings"] = c.tie_embeddings;
  j["bos_id"] = c.bos_id;
  j["eos_id"] = c.eos_id;
  j["stop_ids"] = c.stop_ids;
  return j;
}

LlamaConfig config_from_json(const json& j, const std::string& source) {
  LB_CHECK(j.is_object(), source, ": config must be a JSON object");
  LlamaConfig c;
  try {
    c.arch = j.at("arch").get<std::string>();
    c.dim = int(json_to_int(j.at("dim"), source + " dim"));
    c.hidden_dim = int(json_to_int(j.at("hidden_dim"), source + " hidden_dim"));
    c.n_layers = int(json_to_int(j.at("n_layers"), source + " n_layers"));
    c.n_heads = int(json_to_int(j.at("n_heads"), source + " n_heads"));
    c.n_kv_heads = int(json_to_int(j.at("n_kv_heads"), source + " n_kv_heads"));
    c.head_dim = int(json_to_int(j.at("head_dim"), source + " head_dim"));
    c.vocab_size = int(json_to_int(j.at("vocab_size"), source + " vocab_size"));
    c.max_seq_len = int(json_to_int(j.at("max_seq_len"), source + " max_seq_len"));
    c.rope_theta = json_to_float(j.at("rope_theta"), source + " rope_theta");
    const json& rs = j.at("rope_scaling");
    c.rope_scaling.type = rs.at("type").get<std::string>();
    c.rope_scaling.factor = json_to_float(rs.at("factor"), source + " factor");
    c.rope_scaling.low_freq_factor = json_to_float(rs.at("low_freq_factor"), source + " low_freq_factor");
    c.rope_scaling.high_freq_factor = json_to_float(rs.at("high_freq_factor"), source + " high_freq_factor");
    c.rope_scaling.original_max_position = int(json_to_int(rs.at("original_max_position"), source + " original_max_position"));
    c.rope_interleaved = j.at("rope_interleaved").get<bool>();
    c.norm_eps = json_to_float(j.at("norm_eps"), source + " norm_eps");
    c.tie_embeddings = j.at("tie_embeddings").get<bool>();
    c.bos_id = int(json_to_int(j.at("bos_id"), source + " bos_id"));
    c.eos_id = int(json_to_int(j.at("eos_id"), source + " eos_id"));
    c.stop_ids.clear();
    for (const auto& v : j.at("stop_ids")) c.stop_ids.push_back(int(json_to_int(v, source + " stop_ids")));
  } catch (const json::exception& e) {
    fail(source, ": bad model config: ", e.what());
  }
  LB_CHECK(c.arch == "llama", source, ": architecture '", c.arch, "' is not supported");
  c.validate(source);
  return c;
}

}  // namespace lowbit

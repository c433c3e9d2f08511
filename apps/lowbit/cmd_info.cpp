// lowbit info --model PATH: what a model file holds, without loading its weights.
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "command.h"
#include "io/loader.h"
#include "model/config.h"

namespace lowbit::cli {

namespace {

const char* source_name(ModelSource s) {
  switch (s) {
    case ModelSource::HfSafetensors: return "hf-safetensors";
    case ModelSource::Gguf: return "gguf";
    case ModelSource::Llama2c: return "llama2c";
    case ModelSource::Synthetic: return "synthetic";
    case ModelSource::LowbitQuantized: return "lowbit";
  }
  return "unknown";
}

std::string with_commas(uint64_t v) {
  const std::string digits = std::to_string(v);
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

int run_info(const std::string& spec, bool as_json) {
  LoadOptions opt;
  opt.config_only = true;
  opt.progress = false;
  Model m = load_model(spec, opt);
  const LlamaConfig& c = m.config;
  std::map<std::string, int> type_counts;
  for (const auto& t : m.source_types) ++type_counts[t];

  if (as_json) {
    nlohmann::json j;
    j["model"] = m.path;
    j["source"] = source_name(m.source);
    j["config"] = config_to_json(c);
    j["params"] = c.param_count();
    j["tensor_types"] = type_counts;
    j["weight_bytes"] = m.source_weight_bytes;
    j["tokenizer"] = m.tokenizer_path;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::string stops;
  for (int s : c.stop_ids) stops += (stops.empty() ? "" : " ") + std::to_string(s);
  std::string types;
  for (const auto& [t, n] : type_counts) types += (types.empty() ? "" : ", ") + t + " x" + std::to_string(n);
  std::string scaling = "none";
  if (!c.rope_scaling.type.empty()) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%s (factor %g, low_freq_factor %g, high_freq_factor %g, original %d)",
                  c.rope_scaling.type.c_str(), c.rope_scaling.factor, c.rope_scaling.low_freq_factor,
                  c.rope_scaling.high_freq_factor, c.rope_scaling.original_max_position);
    scaling = buf;
  }
  std::printf("model:            %s\n", m.path.c_str());
  std::printf("source:           %s\n", source_name(m.source));
  std::printf("architecture:     %s\n", c.arch.c_str());
  std::printf("dim:              %d\n", c.dim);
  std::printf("hidden_dim:       %d\n", c.hidden_dim);
  std::printf("n_layers:         %d\n", c.n_layers);
  std::printf("n_heads:          %d (kv heads %d, head_dim %d)\n", c.n_heads, c.n_kv_heads, c.head_dim);
  std::printf("vocab_size:       %d\n", c.vocab_size);
  std::printf("max_seq_len:      %d\n", c.max_seq_len);
  std::printf("rope:             theta %g, %s layout, scaling %s\n", c.rope_theta,
              c.rope_interleaved ? "interleaved (Meta/GGUF)" : "half-split (HF)", scaling.c_str());
  std::printf("norm_eps:         %g\n", c.norm_eps);
  std::printf("tied embeddings:  %s\n", c.tie_embeddings ? "yes" : "no");
  std::printf("tokens:           bos %d, eos %d, stop %s\n", c.bos_id, c.eos_id, stops.c_str());
  std::printf("parameters:       %s\n", with_commas(uint64_t(c.param_count())).c_str());
  std::printf("tensor types:     %s\n", types.c_str());
  std::printf("weight bytes:     %s (%s bytes, as stored)\n", human_bytes(double(m.source_weight_bytes)).c_str(),
              with_commas(m.source_weight_bytes).c_str());
  std::printf("tokenizer:        %s\n", m.tokenizer_path.empty() ? "(none found)" : m.tokenizer_path.c_str());
  return 0;
}

const RegisterCommand kInfo{
    "info", "Show a model's architecture, hyper-parameters, parameter count and stored tensor types",
    [](CLI::App& app) -> std::function<int()> {
      auto spec = std::make_shared<std::string>();
      auto as_json = std::make_shared<bool>(false);
      app.add_option("--model,-m", *spec,
                     "model: a .gguf, llama2.c .bin, lowbit file, Hugging Face directory or synthetic:<preset>")
          ->required();
      app.add_flag("--json", *as_json, "print JSON instead of text");
      return [spec, as_json] { return run_info(*spec, *as_json); };
    }};

}  // namespace

}  // namespace lowbit::cli

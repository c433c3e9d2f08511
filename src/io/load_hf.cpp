// Hugging Face model directories: config.json + model.safetensors, or shards listed by
// model.safetensors.index.json. Weights are zero-copy views into the shards' memory maps.
#include <map>

#include <nlohmann/json.hpp>

#include "io/loader.h"
#include "io/loader_internal.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace lowbit {

namespace {

using io_detail::StoredTensor;
using nlohmann::json;

std::string hf_name(const std::string& canonical) {
  if (canonical == "tok_embeddings") return "model.embed_tokens.weight";
  if (canonical == "norm") return "model.norm.weight";
  if (canonical == "output") return "lm_head.weight";
  const size_t dot = canonical.find('.', 7);
  const std::string n = canonical.substr(7, dot - 7), part = canonical.substr(dot + 1);
  static const std::pair<const char*, const char*> parts[] = {
      {"attention_norm", "input_layernorm"},    {"attention.wq", "self_attn.q_proj"},
      {"attention.wk", "self_attn.k_proj"},      {"attention.wv", "self_attn.v_proj"},
      {"attention.wo", "self_attn.o_proj"},      {"ffn_norm", "post_attention_layernorm"},
      {"feed_forward.w1", "mlp.gate_proj"},      {"feed_forward.w2", "mlp.down_proj"},
      {"feed_forward.w3", "mlp.up_proj"},
  };
  for (const auto& [c, h] : parts)
    if (part == c) return "model.layers." + n + "." + h + ".weight";
  return canonical;
}

std::optional<Format> plain_dtype(const std::string& dtype) {
  if (dtype == "F32") return Format::F32;
  if (dtype == "BF16") return Format::BF16;
  if (dtype == "F16") return Format::F16;
  return std::nullopt;
}

class HfSource : public io_detail::WeightSource {
 public:
  HfSource(std::string where, std::map<std::string, SafeTensorsFile> shards,
           std::map<std::string, std::string> weight_map, std::string index_path)
      : where_(std::move(where)), shards_(std::move(shards)), weight_map_(std::move(weight_map)),
        index_path_(std::move(index_path)) {}

  std::string where() const override { return where_; }

  std::optional<StoredTensor> find(const std::string& canonical) const override {
    const std::string name = hf_name(canonical);
    const SafeTensorsFile* file = nullptr;
    if (!index_path_.empty()) {
      auto it = weight_map_.find(name);
      if (it == weight_map_.end()) fail(index_path_, ": tensor '", name, "' is not in the weight map");
      file = &shards_.at(it->second);
    } else {
      file = &shards_.begin()->second;
    }
    const SafeTensorInfo* ti = file->find(name);
    if (!ti) fail(file->path, ": tensor '", name, "' is missing");
    StoredTensor t;
    t.name = name;
    t.file = file->path;
    t.shape = ti->shape;
    t.type = ti->dtype;
    t.nbytes = ti->nbytes;
    const auto fmt = plain_dtype(ti->dtype);
    t.host_bytes = 0;
    const std::string path = file->path, dtype = ti->dtype;
    const uint8_t* data = ti->data;
    const int64_t rows = ti->shape.empty() ? 0 : ti->shape[0];
    const int64_t cols = ti->shape.size() == 2 ? ti->shape[1] : 1;
    const int64_t n = ti->numel();
    std::shared_ptr<const void> owner = file->file;
    auto check = [=] {
      if (!fmt) fail(path, ": tensor '", name, "' has dtype ", dtype, ", expected F32, BF16 or F16");
    };
    t.as_qtensor = [=] {
      check();
      return io_detail::plain_matrix(name, *fmt, rows, cols, data, owner);
    };
    t.as_floats = [=] {
      check();
      return io_detail::plain_to_floats(*fmt, data, n);
    };
    return t;
  }

  std::vector<std::shared_ptr<const void>> maps() const {
    std::vector<std::shared_ptr<const void>> r;
    for (const auto& [n, f] : shards_) r.push_back(f.file);
    return r;
  }

 private:
  std::string where_;
  std::map<std::string, SafeTensorsFile> shards_;  // shard file name -> file
  std::map<std::string, std::string> weight_map_;  // tensor name -> shard file name
  std::string index_path_;
};

json read_json_file(const std::string& path) {
  std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(path, ": bad JSON: ", e.what());
  }
}

}  // namespace

Model load_hf_dir(const std::string& dir, const LoadOptions& opt) {
  const std::string config_path = dir + "/config.json";
  if (!file_exists(config_path))
    fail(dir, ": no config.json (a Hugging Face model directory needs config.json and *.safetensors)");
  Model m;
  m.config = config_from_hf_json(read_json_file(config_path), config_path);
  m.source = ModelSource::HfSafetensors;
  m.path = dir;

  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  std::map<std::string, SafeTensorsFile> shards;
  std::map<std::string, std::string> weight_map;
  std::string where;
  if (file_exists(index_path)) {
    json index = read_json_file(index_path);
    auto wm = index.find("weight_map");
    if (!index.is_object() || wm == index.end() || !wm->is_object())
      fail(index_path, ": expected an object with a \"weight_map\" object");
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) fail(index_path, ": weight_map entry for '", it.key(), "' is not a file name");
      const std::string shard = it.value().get<std::string>();
      // Shards live in the model directory: no paths, so an index cannot point outside it.
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "..")
        fail(index_path, ": shard name '", shard, "' is not a plain file name");
      weight_map[it.key()] = shard;
      if (!shards.count(shard)) {
        const std::string shard_path = dir + "/" + shard;
        if (!file_exists(shard_path))
          fail(index_path, ": shard '", shard, "' (holding '", it.key(), "') is missing from ", dir);
        shards.emplace(shard, SafeTensorsFile::open(shard_path));
      }
    }
    where = index_path;
  } else if (file_exists(single_path)) {
    shards.emplace("model.safetensors", SafeTensorsFile::open(single_path));
    where = single_path;
  } else {
    fail(dir, ": no model.safetensors or model.safetensors.index.json");
  }
  HfSource src(where, std::move(shards), std::move(weight_map), file_exists(index_path) ? index_path : "");
  io_detail::assemble_model(m, src, opt);
  if (!opt.config_only)
    for (auto& p : src.maps()) m.keep_alive.push_back(p);
  for (const char* tok : {"tokenizer.json", "tokenizer.model"})
    if (file_exists(dir + "/" + tok)) {
      m.tokenizer_path = dir + "/" + tok;
      break;
    }
  return m;
}

}  // namespace lowbit

// The lowbit quantized file (docs/file-format.md): a safetensors container holding each QTensor's codes,
// scales and offsets as raw bytes, plus the config and per-tensor format descriptions as JSON metadata.
// Loading is zero-copy: QTensor buffers are views into the memory map.
#include <cctype>
#include <cstring>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/loader.h"
#include "io/loader_internal.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/json_num.h"
#include "util/mapped_file.h"

namespace lowbit {

namespace {

using io_detail::StoredTensor;
using nlohmann::json;

constexpr const char* kFormatVersion = "1";

const char* rule_name(ScaleRule r) { return r == ScaleRule::RCeil ? "rceil" : "floor"; }

// Which tokenizer a file holds, by content (names vary: tokenizer.bin, tok512.bin, ...).
std::string tokenizer_kind(const std::string& path, const std::vector<uint8_t>& b) {
  if (b.size() >= 4 && std::memcmp(b.data(), "GGUF", 4) == 0) return "gguf";
  size_t i = 0;
  while (i < b.size() && std::isspace(b[i])) ++i;
  if (i < b.size() && b[i] == '{') return "hf-json";
  // tiktoken: lines of "<base64 token> <rank>"
  size_t j = 0;
  while (j < b.size() && (std::isalnum(b[j]) || b[j] == '+' || b[j] == '/' || b[j] == '=')) ++j;
  if (j > 0 && j < b.size() && b[j] == ' ') {
    size_t k = j + 1;
    while (k < b.size() && std::isdigit(b[k])) ++k;
    if (k > j + 1 && k < b.size() && b[k] == '\n') return "tiktoken";
  }
  // llama2.c tokenizer.bin: int32 max_token_length, then (float score, int32 len, bytes) records.
  if (b.size() >= 4) return "llama2c";
  fail(path, ": not a tokenizer file lowbit knows (llama2.c .bin, tiktoken .model, tokenizer.json or GGUF)");
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  auto f = MappedFile::open(path);
  return std::vector<uint8_t>(f->data(), f->data() + f->size());
}

// A GGUF model file is mostly weights: keep only what a tokenizer reads.
std::vector<uint8_t> gguf_tokenizer_only(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  std::map<std::string, GgufValue> kv;
  for (const auto& [k, v] : g.kv)
    if (k.rfind("tokenizer.", 0) == 0 || k == "general.architecture") kv[k] = v;
  return gguf_write_metadata(kv);
}

void add_qtensor(SafeTensorsWriter& w, json& tensors, const std::string& name, const QTensor& t) {
  t.validate();
  tensors[name] = {{"format", format_name(t.fmt)}, {"rows", t.rows},  {"cols", t.cols},
                   {"group", t.group},             {"rule", rule_name(t.rule)}, {"tensor_scale", t.tensor_scale}};
  w.add(name + ".codes", "U8", {int64_t(t.codes.size)}, t.codes.data, t.codes.size);
  if (t.scales.size) w.add(name + ".scales", "U8", {int64_t(t.scales.size)}, t.scales.data, t.scales.size);
  if (t.offsets.size) w.add(name + ".offsets", "U8", {int64_t(t.offsets.size)}, t.offsets.data, t.offsets.size);
}

void add_norm(SafeTensorsWriter& w, const std::string& name, const std::vector<float>& v) {
  w.add(name, "F32", {int64_t(v.size())}, v.data(), v.size() * 4);
}

// A view into the map when aligned for the widest element a kernel reads from it (f32 scales), else a copy.
Buffer aligned_view(const SafeTensorInfo& ti, std::shared_ptr<const void> owner) {
  if (reinterpret_cast<uintptr_t>(ti.data) % 4 == 0) return Buffer::view(ti.data, ti.nbytes, std::move(owner));
  return Buffer::own(std::vector<uint8_t>(ti.data, ti.data + ti.nbytes));
}

class LowbitSource : public io_detail::WeightSource {
 public:
  LowbitSource(const SafeTensorsFile& f, json tensors) : f_(f), tensors_(std::move(tensors)) {}
  std::string where() const override { return f_.path; }

  std::optional<StoredTensor> find(const std::string& canonical) const override {
    StoredTensor t;
    t.name = canonical;
    t.file = f_.path;
    const std::string& path = f_.path;
    std::shared_ptr<const void> owner = f_.file;
    if (canonical == "norm" || (canonical.size() > 5 && canonical.compare(canonical.size() - 5, 5, "_norm") == 0)) {
      const SafeTensorInfo& ti = f_.get(canonical);
      LB_CHECK(ti.dtype == "F32", path, ": tensor '", canonical, "' has dtype ", ti.dtype, ", expected F32");
      t.shape = ti.shape;
      t.type = format_name(Format::F32);  // the registry's names, as for the quantized tensors
      t.nbytes = ti.nbytes;
      const uint8_t* data = ti.data;
      const int64_t n = ti.numel();
      t.as_floats = [=] { return io_detail::plain_to_floats(Format::F32, data, n); };
      return t;
    }
    auto it = tensors_.find(canonical);
    if (it == tensors_.end()) fail(path, ": lowbit.tensors has no entry for '", canonical, "'");
    const json& e = *it;
    Format fmt;
    int64_t rows = 0, cols = 0;
    int group = 0;
    ScaleRule rule = ScaleRule::Floor;
    float tensor_scale = 1.0f;
    try {
      fmt = parse_format_or_throw(e.at("format").get<std::string>(), path + " lowbit.tensors '" + canonical + "'");
      const std::string where = path + " lowbit.tensors '" + canonical + "'";
      rows = json_to_int(e.at("rows"), where + " rows", 1, int64_t(1) << 40);
      cols = json_to_int(e.at("cols"), where + " cols", 1, int64_t(1) << 40);
      group = int(json_to_int(e.at("group"), where + " group", 0, 1 << 20));
      auto r = parse_scale_rule(e.at("rule").get<std::string>());
      if (!r) fail(path, ": lowbit.tensors '", canonical, "': unknown scale rule ", e.at("rule").dump());
      rule = *r;
      tensor_scale = json_to_float(e.at("tensor_scale"), where + " tensor_scale");
    } catch (const json::exception& ex) {
      fail(path, ": lowbit.tensors entry for '", canonical, "' is malformed: ", ex.what());
    }
    LB_CHECK(rows > 0 && cols > 0, path, ": lowbit.tensors '", canonical, "': bad shape [", rows, ", ", cols, "]");
    const SafeTensorInfo& codes = f_.get(canonical + ".codes");
    const SafeTensorInfo* scales = f_.find(canonical + ".scales");
    const SafeTensorInfo* offsets = f_.find(canonical + ".offsets");
    for (const SafeTensorInfo* ti : {&codes, scales, offsets})
      if (ti) LB_CHECK(ti->dtype == "U8", path, ": tensor '", ti->name, "' has dtype ", ti->dtype, ", expected U8");
    t.shape = {rows, cols};
    t.type = format_name(fmt);
    t.nbytes = codes.nbytes + (scales ? scales->nbytes : 0) + (offsets ? offsets->nbytes : 0);
    const SafeTensorInfo codes_v = codes;
    const std::optional<SafeTensorInfo> scales_v = scales ? std::optional(*scales) : std::nullopt;
    const std::optional<SafeTensorInfo> offsets_v = offsets ? std::optional(*offsets) : std::nullopt;
    t.as_qtensor = [=] {
      QTensor q;
      q.name = canonical;
      q.fmt = fmt;
      q.rows = rows;
      q.cols = cols;
      q.group = group;
      q.rule = rule;
      q.tensor_scale = tensor_scale;
      q.codes = aligned_view(codes_v, owner);
      if (scales_v) q.scales = aligned_view(*scales_v, owner);
      if (offsets_v) q.offsets = aligned_view(*offsets_v, owner);
      try {
        q.validate();
      } catch (const Error& err) {
        fail(path, ": ", err.what());
      }
      return q;
    };
    return t;
  }

 private:
  const SafeTensorsFile& f_;
  json tensors_;
};

json parse_metadata_json(const SafeTensorsFile& f, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) fail(f.path, ": lowbit metadata '", key, "' is missing");
  try {
    return json::parse(it->second);
  } catch (const json::exception& e) {
    fail(f.path, ": lowbit metadata '", key, "' is not valid JSON: ", e.what());
  }
}

void check_lowbit(const SafeTensorsFile& f) {
  auto it = f.metadata.find("lowbit.format");
  if (it == f.metadata.end()) fail(f.path, ": not a lowbit quantized file (no lowbit.format metadata)");
  if (it->second != kFormatVersion)
    fail(f.path, ": lowbit file format version ", it->second, " is not supported (this build reads version ",
         kFormatVersion, ")");
}

}  // namespace

void save_lowbit(const Model& model, const std::string& path, const std::string& tokenizer_file) {
  const LlamaConfig& c = model.config;
  c.validate(model.path);
  LB_CHECK(model.weights.layers.size() == size_t(c.n_layers), model.path, ": model has ",
           model.weights.layers.size(), " layers, its config says ", c.n_layers, " (weights not loaded?)");
  SafeTensorsWriter w;
  json tensors = json::object();
  const ModelWeights& mw = model.weights;
  add_qtensor(w, tensors, "tok_embeddings", mw.tok_embeddings);
  for (size_t i = 0; i < mw.layers.size(); ++i) {
    const LayerWeights& L = mw.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    add_norm(w, p + "attention_norm", L.attn_norm);
    add_qtensor(w, tensors, p + "attention.wq", L.wq);
    add_qtensor(w, tensors, p + "attention.wk", L.wk);
    add_qtensor(w, tensors, p + "attention.wv", L.wv);
    add_qtensor(w, tensors, p + "attention.wo", L.wo);
    add_norm(w, p + "ffn_norm", L.ffn_norm);
    add_qtensor(w, tensors, p + "feed_forward.w1", L.w1);
    add_qtensor(w, tensors, p + "feed_forward.w2", L.w2);
    add_qtensor(w, tensors, p + "feed_forward.w3", L.w3);
  }
  add_norm(w, "norm", mw.norm);
  if (!c.tie_embeddings) add_qtensor(w, tensors, "output", mw.output);

  std::vector<uint8_t> tok_bytes;
  if (!tokenizer_file.empty()) {
    tok_bytes = read_bytes(tokenizer_file);
    const std::string kind = tokenizer_kind(tokenizer_file, tok_bytes);
    if (kind == "gguf") tok_bytes = gguf_tokenizer_only(tokenizer_file);
    w.add("tokenizer.bytes", "U8", {int64_t(tok_bytes.size())}, tok_bytes.data(), tok_bytes.size());
    w.set_metadata("lowbit.tokenizer", kind);
  }
  w.set_metadata("lowbit.format", kFormatVersion);
  w.set_metadata("lowbit.config", config_to_json(c).dump());
  w.set_metadata("lowbit.tensors", tensors.dump());
  w.set_metadata("lowbit.writer", std::string("lowbit ") + LOWBIT_GIT_COMMIT);
  if (model.default_acts) w.set_metadata("lowbit.acts", format_name(*model.default_acts));
  w.write(path);
}

Model load_lowbit(const std::string& path, const LoadOptions& opt) {
  SafeTensorsFile f = SafeTensorsFile::open(path);
  check_lowbit(f);
  Model m;
  m.config = config_from_json(parse_metadata_json(f, "lowbit.config"), path + " lowbit.config");
  json tensors = parse_metadata_json(f, "lowbit.tensors");
  LB_CHECK(tensors.is_object(), path, ": lowbit.tensors must be a JSON object");
  m.source = ModelSource::LowbitQuantized;
  m.path = path;
  if (f.find("tokenizer.bytes")) m.tokenizer_path = path;
  if (auto a = f.metadata.find("lowbit.acts"); a != f.metadata.end()) {
    const auto fmt = parse_format(a->second);
    LB_CHECK(fmt && format_info(*fmt).act_ok, path, ": lowbit.acts '", a->second, "' is not an activation format");
    m.default_acts = fmt;
  }
  LowbitSource src(f, std::move(tensors));
  io_detail::assemble_model(m, src, opt);
  if (!opt.config_only) m.keep_alive.push_back(f.file);
  return m;
}

std::optional<EmbeddedTokenizer> lowbit_embedded_tokenizer(const std::string& path) {
  SafeTensorsFile f = SafeTensorsFile::open(path);
  check_lowbit(f);
  const SafeTensorInfo* t = f.find("tokenizer.bytes");
  if (!t) return std::nullopt;
  auto kind = f.metadata.find("lowbit.tokenizer");
  if (kind == f.metadata.end()) fail(path, ": tokenizer.bytes present but lowbit.tokenizer metadata missing");
  LB_CHECK(t->dtype == "U8", path, ": tokenizer.bytes has dtype ", t->dtype, ", expected U8");
  return EmbeddedTokenizer{kind->second, std::vector<uint8_t>(t->data, t->data + t->nbytes)};
}

}  // namespace lowbit

// GGUF (llama architecture) -> Model. Plain tensors are zero-copy views into the map; Q8_0/Q4_0/Q4_1
// tensors are dequantized to f32 on load.
#include <algorithm>
#include <cmath>
#include <limits>

#include "io/gguf.h"
#include "io/loader.h"
#include "io/loader_internal.h"
#include "util/error.h"

namespace lowbit {

namespace {

using io_detail::StoredTensor;

// Canonical weight name -> llama.cpp's GGUF tensor name.
std::string gguf_name(const std::string& canonical) {
  if (canonical == "tok_embeddings") return "token_embd.weight";
  if (canonical == "norm") return "output_norm.weight";
  if (canonical == "output") return "output.weight";
  // layers.N.<part>
  const size_t dot = canonical.find('.', 7);
  const std::string n = canonical.substr(7, dot - 7), part = canonical.substr(dot + 1);
  static const std::pair<const char*, const char*> parts[] = {
      {"attention_norm", "attn_norm"},   {"attention.wq", "attn_q"},  {"attention.wk", "attn_k"},
      {"attention.wv", "attn_v"},        {"attention.wo", "attn_output"}, {"ffn_norm", "ffn_norm"},
      {"feed_forward.w1", "ffn_gate"},   {"feed_forward.w2", "ffn_down"}, {"feed_forward.w3", "ffn_up"},
  };
  for (const auto& [c, g] : parts)
    if (part == c) return "blk." + n + "." + g + ".weight";
  return canonical;
}

bool lowbit_reads(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0: case GgmlType::Q4_0:
    case GgmlType::Q4_1: return true;
  }
  return false;
}

std::optional<Format> plain_format(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: return Format::F32;
    case GgmlType::F16: return Format::F16;
    case GgmlType::BF16: return Format::BF16;
    default: return std::nullopt;
  }
}

class GgufSource : public io_detail::WeightSource {
 public:
  GgufSource(const GgufFile& g, std::shared_ptr<const void> owner) : g_(g), owner_(std::move(owner)) {}

  std::string where() const override { return g_.path; }
  std::string memory_note() const override { return " to dequantize its quantized tensors to f32"; }

  std::optional<StoredTensor> find(const std::string& canonical) const override {
    const std::string name = gguf_name(canonical);
    const GgufTensorInfo* ti = g_.find_tensor(name);
    if (!ti) {
      if (canonical != "output") fail(g_.path, ": tensor '", name, "' is missing");
      return std::nullopt;
    }
    StoredTensor t;
    t.name = name;
    t.file = g_.path;
    t.shape.assign(ti->dims.rbegin(), ti->dims.rend());  // ggml dims are innermost first
    t.type = ggml_type_name(ti->type);
    t.nbytes = ti->nbytes;
    const auto plain = plain_format(ti->type);
    t.host_bytes = plain ? 0 : size_t(ti->numel()) * 4;
    const GgufTensorInfo info = *ti;
    const std::string path = g_.path;
    auto check_type = [info, path] {
      if (!lowbit_reads(info.type))
        fail(path, ": tensor '", info.name, "' has ggml type ", ggml_type_name(info.type), " (id ", info.type,
             "), which lowbit does not read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
    };
    auto owner = owner_;
    t.as_qtensor = [info, plain, owner, check_type]() {
      check_type();
      const int64_t rows = info.dims.size() == 2 ? info.dims[1] : 1, cols = info.dims[0];
      if (plain) return io_detail::plain_matrix(info.name, *plain, rows, cols, info.data, owner);
      Buffer b = io_detail::uninitialized_buffer(size_t(info.numel()) * 4);
      ggml_dequantize(info.type, info.data, info.numel(), reinterpret_cast<float*>(b.mutable_data()), info.name);
      return view_plain(info.name, Format::F32, rows, cols, b.data, b.owner);
    };
    t.as_floats = [info, check_type]() {
      check_type();
      std::vector<float> f(size_t(info.numel()));
      ggml_dequantize(info.type, info.data, info.numel(), f.data(), info.name);
      return f;
    };
    return t;
  }

 private:
  const GgufFile& g_;
  std::shared_ptr<const void> owner_;
};

int to_int(const GgufFile& g, const std::string& key, int64_t v) {
  if (v < 0 || v > std::numeric_limits<int>::max()) fail(g.path, ": ", key, " = ", v, " is out of range");
  return int(v);
}

// Llama 3.1 GGUFs carry the llama3 rope scaling as a rope_freqs tensor (one divisor per frequency pair)
// instead of metadata. lowbit's config holds the llama3 parameters, so find the ones that reproduce it.
void rope_scaling_from_freqs(const GgufFile& g, const GgufTensorInfo& t, LlamaConfig& c) {
  LB_CHECK(t.numel() == c.head_dim / 2, g.path, ": rope_freqs.weight has ", t.numel(), " values, expected head_dim/2 = ",
           c.head_dim / 2);
  std::vector<float> div(size_t(t.numel()));
  LB_CHECK(t.type == uint32_t(GgmlType::F32), g.path, ": rope_freqs.weight has type ", ggml_type_name(t.type),
           ", expected F32");
  ggml_dequantize(t.type, t.data, t.numel(), div.data(), t.name);
  if (std::all_of(div.begin(), div.end(), [](float x) { return x == 1.0f; })) return;
  LlamaConfig base = c;
  base.rope_scaling = {};
  const std::vector<float> unscaled = base.rope_inv_freq();
  for (float factor : {8.0f, 32.0f, 16.0f, 4.0f, 2.0f}) {
    LlamaConfig cand = c;
    cand.rope_scaling = RopeScaling{"llama3", factor, 1.0f, 4.0f,
                                    int(g.get_int_or("llama.rope.scaling.original_context_length", 8192))};
    const std::vector<float> scaled = cand.rope_inv_freq();
    bool match = true;
    for (size_t i = 0; i < div.size() && match; ++i)
      match = std::fabs(unscaled[i] / scaled[i] - div[i]) <= 1e-3f * div[i];
    if (match) {
      c.rope_scaling = cand.rope_scaling;
      return;
    }
  }
  fail(g.path, ": rope_freqs.weight does not match the llama3 rope scaling rule (lowbit supports only llama3)");
}

LlamaConfig gguf_config(const GgufFile& g) {
  const std::string arch = g.get_string("general.architecture");
  if (arch != "llama") fail(g.path, ": GGUF architecture '", arch, "' is not supported (lowbit reads llama)");
  auto geti = [&](const std::string& k) { return to_int(g, k, g.get_int(k)); };
  LlamaConfig c;
  c.arch = "llama";
  c.dim = geti("llama.embedding_length");
  c.hidden_dim = geti("llama.feed_forward_length");
  c.n_layers = geti("llama.block_count");
  c.n_heads = geti("llama.attention.head_count");
  LB_CHECK(c.n_heads > 0, g.path, ": llama.attention.head_count must be positive");
  c.n_kv_heads = to_int(g, "llama.attention.head_count_kv", g.get_int_or("llama.attention.head_count_kv", c.n_heads));
  c.head_dim = to_int(g, "llama.attention.key_length", g.get_int_or("llama.attention.key_length", c.dim / c.n_heads));
  if (g.has("llama.rope.dimension_count")) {
    const int rot = geti("llama.rope.dimension_count");
    LB_CHECK(rot == c.head_dim, g.path, ": llama.rope.dimension_count is ", rot, " but head_dim is ", c.head_dim,
             " (partial rotary embeddings are not supported)");
  }
  c.norm_eps = float(g.get_float_or("llama.attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = float(g.get_float_or("llama.rope.freq_base", 10000.0));
  c.max_seq_len = to_int(g, "llama.context_length", g.get_int_or("llama.context_length", 2048));
  const std::string scaling = g.get_string_or("llama.rope.scaling.type", "none");
  LB_CHECK(scaling == "none", g.path, ": rope scaling type '", scaling, "' is not supported");

  if (const GgufTensorInfo* e = g.find_tensor("token_embd.weight"); e && e->dims.size() == 2) {
    c.vocab_size = to_int(g, "token_embd.weight rows", e->dims[1]);
  } else if (g.has("llama.vocab_size")) {
    c.vocab_size = geti("llama.vocab_size");
  } else if (g.has("tokenizer.ggml.tokens")) {
    c.vocab_size = int(g.get_string_array("tokenizer.ggml.tokens").size());
  }
  // llama.cpp permutes q/k into the interleaved (Meta) rotary layout when converting.
  c.rope_interleaved = true;
  c.tie_embeddings = g.find_tensor("output.weight") == nullptr;
  c.bos_id = to_int(g, "tokenizer.ggml.bos_token_id", g.get_int_or("tokenizer.ggml.bos_token_id", 1));
  c.eos_id = to_int(g, "tokenizer.ggml.eos_token_id", g.get_int_or("tokenizer.ggml.eos_token_id", 2));
  c.stop_ids = {c.eos_id};
  if (g.has("tokenizer.ggml.tokens")) {
    const auto& v = g.kv.at("tokenizer.ggml.tokens");
    if (auto* tokens = std::get_if<std::vector<std::string>>(&v.v)) {
      // Chat models end a turn with these rather than with the end-of-text token.
      for (const char* stop : {"<|im_end|>", "<|eot_id|>"}) {
        auto it = std::find(tokens->begin(), tokens->end(), stop);
        int id = int(it - tokens->begin());
        if (it != tokens->end() && id < c.vocab_size &&
            std::find(c.stop_ids.begin(), c.stop_ids.end(), id) == c.stop_ids.end())
          c.stop_ids.push_back(id);
      }
    }
  }
  if (const GgufTensorInfo* rf = g.find_tensor("rope_freqs.weight")) {
    LB_CHECK(c.head_dim > 0, g.path, ": head_dim must be positive");
    rope_scaling_from_freqs(g, *rf, c);
  }
  c.validate(g.path);
  return c;
}

}  // namespace

Model load_gguf(const std::string& path, const LoadOptions& opt) {
  GgufFile g = GgufFile::open(path);
  Model m;
  m.config = gguf_config(g);
  m.source = ModelSource::Gguf;
  m.path = path;
  m.tokenizer_path = path;  // GGUF files carry their vocabulary
  GgufSource src(g, g.file);
  io_detail::assemble_model(m, src, opt);
  if (!opt.config_only) m.keep_alive.push_back(g.file);
  return m;
}

}  // namespace lowbit

// llama2.c checkpoints (legacy format): a 7 x int32 header, then fp32 weights in a fixed order. The file
// holds no names or shapes, so the header is checked against the exact file size before anything is read.
#include <cstring>
#include <limits>

#include "io/loader.h"
#include "io/loader_internal.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace lowbit {

namespace {

using io_detail::StoredTensor;

struct Llama2cLayout {
  int64_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
  bool shared_classifier;
  // offsets in floats from the start of the weights (after the header)
  int64_t tok, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls, end;
};

constexpr size_t kHeaderBytes = 7 * 4;

Llama2cLayout parse_header(const std::string& path, const uint8_t* data, size_t size) {
  if (size < kHeaderBytes)
    fail(path, ": too small for a llama2.c checkpoint (", size, " bytes; the header alone is ", kHeaderBytes, ")");
  if (std::memcmp(data, "ak42", 4) == 0 || std::memcmp(data, "24ka", 4) == 0)
    fail(path, ": llama2.c export format version 1+ (magic ak42) is not supported; export with the legacy format");
  int32_t h[7];
  std::memcpy(h, data, sizeof(h));
  Llama2cLayout L{};
  L.dim = h[0];
  L.hidden = h[1];
  L.layers = h[2];
  L.heads = h[3];
  L.kv_heads = h[4];
  L.shared_classifier = h[5] > 0;
  L.vocab = h[5] < 0 ? -int64_t(h[5]) : h[5];
  L.seq_len = h[6];
  auto bad = [&](const char* why) {
    fail(path, ": not a llama2.c checkpoint (header dim ", h[0], ", hidden_dim ", h[1], ", n_layers ", h[2],
         ", n_heads ", h[3], ", n_kv_heads ", h[4], ", vocab_size ", h[5], ", seq_len ", h[6], ": ", why, ")");
  };
  // Bounds keep every term below 2^52 and their sum below 2^56: no overflow in the size arithmetic.
  constexpr int64_t kMax = int64_t(1) << 20;
  for (int64_t v : {L.dim, L.hidden, L.layers, L.heads, L.kv_heads, L.vocab, L.seq_len})
    if (v <= 0 || v > kMax) bad("values must be positive and at most 2^20");
  if (L.layers > 4096) bad("more than 4096 layers");
  if (L.dim % L.heads != 0) bad("dim is not a multiple of n_heads");
  if (L.heads % L.kv_heads != 0) bad("n_heads is not a multiple of n_kv_heads");
  const int64_t head = L.dim / L.heads, kv_dim = L.dim * L.kv_heads / L.heads;
  if (head % 2 != 0) bad("head size is odd");
  int64_t off = 0;
  auto take = [&](int64_t n) {
    int64_t at = off;
    off += n;
    return at;
  };
  L.tok = take(L.vocab * L.dim);
  L.rms_att = take(L.layers * L.dim);
  L.wq = take(L.layers * L.dim * L.dim);
  L.wk = take(L.layers * L.dim * kv_dim);
  L.wv = take(L.layers * L.dim * kv_dim);
  L.wo = take(L.layers * L.dim * L.dim);
  L.rms_ffn = take(L.layers * L.dim);
  L.w1 = take(L.layers * L.dim * L.hidden);
  L.w2 = take(L.layers * L.hidden * L.dim);
  L.w3 = take(L.layers * L.dim * L.hidden);
  L.rms_final = take(L.dim);
  take(L.seq_len * head / 2);  // freq_cis_real (unused: rope is computed)
  take(L.seq_len * head / 2);  // freq_cis_imag
  L.wcls = L.shared_classifier ? L.tok : take(L.vocab * L.dim);
  L.end = off;
  const uint64_t expect = kHeaderBytes + uint64_t(L.end) * 4;
  if (expect != size)
    fail(path, ": llama2.c checkpoint size mismatch: the header (dim ", L.dim, ", hidden_dim ", L.hidden,
         ", n_layers ", L.layers, ", n_heads ", L.heads, ", n_kv_heads ", L.kv_heads, ", vocab_size ", h[5],
         ", seq_len ", L.seq_len, ") implies ", expect, " bytes, the file has ", size,
         size < expect ? " (truncated?)" : " (trailing data or not a llama2.c file)");
  return L;
}

class Llama2cSource : public io_detail::WeightSource {
 public:
  Llama2cSource(const Llama2cLayout& L, std::shared_ptr<MappedFile> f) : L_(L), f_(std::move(f)) {}
  std::string where() const override { return f_->path(); }

  std::optional<StoredTensor> find(const std::string& canonical) const override {
    const int64_t kv_dim = L_.dim * L_.kv_heads / L_.heads;
    int64_t layer = -1;
    std::string part = canonical;
    if (canonical.rfind("layers.", 0) == 0) {
      const size_t dot = canonical.find('.', 7);
      layer = std::stoll(canonical.substr(7, dot - 7));
      part = canonical.substr(dot + 1);
    }
    // (name, base offset, rows, cols); per-layer tensors are stacked [n_layers, rows, cols].
    struct Spec {
      const char* name;
      int64_t base, rows, cols;
    };
    const Spec specs[] = {
        {"tok_embeddings", L_.tok, L_.vocab, L_.dim},  {"norm", L_.rms_final, 1, L_.dim},
        {"output", L_.wcls, L_.vocab, L_.dim},          {"attention_norm", L_.rms_att, 1, L_.dim},
        {"attention.wq", L_.wq, L_.dim, L_.dim},        {"attention.wk", L_.wk, kv_dim, L_.dim},
        {"attention.wv", L_.wv, kv_dim, L_.dim},        {"attention.wo", L_.wo, L_.dim, L_.dim},
        {"ffn_norm", L_.rms_ffn, 1, L_.dim},            {"feed_forward.w1", L_.w1, L_.hidden, L_.dim},
        {"feed_forward.w2", L_.w2, L_.dim, L_.hidden},  {"feed_forward.w3", L_.w3, L_.hidden, L_.dim},
    };
    for (const Spec& s : specs) {
      if (part != s.name) continue;
      const bool is_vector = s.rows == 1;
      const int64_t offset = s.base + (layer >= 0 ? layer * s.rows * s.cols : 0);
      const uint8_t* data = f_->data() + kHeaderBytes + size_t(offset) * 4;
      StoredTensor t;
      t.name = layer >= 0 ? std::string(s.name) + "[" + std::to_string(layer) + "]" : s.name;
      t.file = f_->path();
      t.shape = is_vector ? std::vector<int64_t>{s.cols} : std::vector<int64_t>{s.rows, s.cols};
      t.type = "F32";
      t.nbytes = size_t(s.rows * s.cols) * 4;
      const int64_t rows = s.rows, cols = s.cols;
      const std::string name = canonical;
      auto owner = std::shared_ptr<const void>(f_);
      t.as_qtensor = [=] { return io_detail::plain_matrix(name, Format::F32, rows, cols, data, owner); };
      t.as_floats = [=] { return io_detail::plain_to_floats(Format::F32, data, rows * cols); };
      return t;
    }
    return std::nullopt;
  }

 private:
  Llama2cLayout L_;
  std::shared_ptr<MappedFile> f_;
};

}  // namespace

Model load_llama2c(const std::string& path, const LoadOptions& opt) {
  auto f = MappedFile::open(path);
  const Llama2cLayout L = parse_header(path, f->data(), f->size());
  Model m;
  LlamaConfig& c = m.config;
  c.arch = "llama";
  c.dim = int(L.dim);
  c.hidden_dim = int(L.hidden);
  c.n_layers = int(L.layers);
  c.n_heads = int(L.heads);
  c.n_kv_heads = int(L.kv_heads);
  c.head_dim = int(L.dim / L.heads);
  c.vocab_size = int(L.vocab);
  c.max_seq_len = int(L.seq_len);
  c.rope_theta = 10000.0f;
  c.rope_interleaved = true;  // run.c rotates adjacent pairs
  c.norm_eps = 1e-5f;
  c.tie_embeddings = L.shared_classifier;
  c.bos_id = 1;
  c.eos_id = 2;
  // run.c ends generation when the model emits BOS (1), the separator between training stories.
  c.stop_ids = {1};
  c.validate(path);
  m.source = ModelSource::Llama2c;
  m.path = path;
  const std::string dir = io_detail::dir_of(path);
  for (const std::string& cand : {dir + "/tok" + std::to_string(L.vocab) + ".bin", dir + "/tokenizer.bin"})
    if (file_exists(cand)) {
      m.tokenizer_path = cand;
      break;
    }
  Llama2cSource src(L, f);
  io_detail::assemble_model(m, src, opt);
  if (!opt.config_only) m.keep_alive.push_back(f);
  return m;
}

}  // namespace lowbit

// The parts every tokenizer shares: BOS/EOS handling, chat formats, and finding and loading a
// tokenizer from a path (by content, not only by name).
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstring>


#include "io/gguf.h"
#include "io/safetensors.h"
#include "tokenizer/internal.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace lowbit {

std::vector<int> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> out;
  out.reserve(text.size() / 3 + 4);
  if (bos && adds_bos()) out.push_back(bos_);
  encode_into(text, true, out);
  if (eos && eos_ >= 0) out.push_back(eos_);
  return out;
}

std::string Tokenizer::decode_all(const std::vector<int>& ids) const {
  std::string out;
  int prev = -1;
  for (int id : ids) {
    out += decode(prev, id);
    prev = id;
  }
  return out;
}

namespace {
std::string_view trim_whitespace(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}
}  // namespace

std::vector<int> Tokenizer::encode_chat(const std::vector<ChatMessage>& dialog, bool add_generation_prompt) const {
  LB_CHECK(chat_ != ChatStyle::None, "tokenizer (", kind(),
           ") has no chat format: its vocabulary has neither <|start_header_id|> nor <|im_start|>");
  std::vector<int> out;
  if (adds_bos()) out.push_back(bos_);
  if (chat_ == ChatStyle::Llama3) {
    // Meta's ChatFormat: header, "\n\n", stripped content, <|eot_id|>; each part encoded on its own.
    const int start = special_token_id("<|start_header_id|>"), end = special_token_id("<|end_header_id|>");
    const int eot = special_token_id("<|eot_id|>");
    LB_CHECK(end >= 0 && eot >= 0, "tokenizer (", kind(), ") has <|start_header_id|> but not <|end_header_id|>/<|eot_id|>");
    auto header = [&](const std::string& role) {
      out.push_back(start);
      encode_into(role, false, out);
      out.push_back(end);
      encode_into("\n\n", false, out);
    };
    for (const ChatMessage& m : dialog) {
      header(m.role);
      encode_into(trim_whitespace(m.content), false, out);
      out.push_back(eot);
    }
    if (add_generation_prompt) header("assistant");
  } else {
    // ChatML: <|im_start|>role\ncontent<|im_end|>\n
    const int start = special_token_id("<|im_start|>"), end = special_token_id("<|im_end|>");
    LB_CHECK(end >= 0, "tokenizer (", kind(), ") has <|im_start|> but not <|im_end|>");
    for (const ChatMessage& m : dialog) {
      out.push_back(start);
      encode_into(m.role + "\n" + m.content, false, out);
      out.push_back(end);
      encode_into("\n", false, out);
    }
    if (add_generation_prompt) {
      out.push_back(start);
      encode_into("assistant\n", false, out);
    }
  }
  return out;
}

namespace tok {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

ByteUnicodeMap::ByteUnicodeMap() {
  // Printable Latin-1 bytes keep their code point; the other 68 bytes map to 256, 257, ... in byte order.
  cp_to_byte.fill(-1);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_to_cp[b] = printable ? b : next++;
    cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
  }
}

bool ByteUnicodeMap::decode(std::string_view spelled, std::string* out) const {
  std::string raw;
  raw.reserve(spelled.size());
  size_t i = 0;
  while (i < spelled.size()) {
    size_t n = utf8_seq_len(spelled.substr(i));
    if (n == 0) return false;
    uint32_t cp;
    auto c0 = static_cast<uint8_t>(spelled[i]);
    if (n == 1) cp = c0;
    else if (n == 2) cp = ((c0 & 0x1Fu) << 6) | (static_cast<uint8_t>(spelled[i + 1]) & 0x3Fu);
    else return false;  // every table code point is below U+0800
    if (cp >= cp_to_byte.size() || cp_to_byte[cp] < 0) return false;
    raw += static_cast<char>(cp_to_byte[cp]);
    i += n;
  }
  *out = std::move(raw);
  return true;
}

std::string ByteUnicodeMap::encode(std::string_view raw) const {
  std::string out;
  for (char c : raw) append_utf8(out, byte_to_cp[static_cast<uint8_t>(c)]);
  return out;
}

const ByteUnicodeMap& byte_unicode_map() {
  static const ByteUnicodeMap map;
  return map;
}

}  // namespace tok

// ---- finding and loading ----------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && std::string_view(s).substr(s.size() - suffix.size()) == suffix;
}

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir == ".") return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// The 7-int llama2.c checkpoint header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len);
// vocab_size is negative when the classifier is not shared. Returns |vocab_size|, or 0 if not plausible.
int llama2c_checkpoint_vocab(const uint8_t* data, size_t size) {
  if (size < 28) return 0;
  int32_t h[7];
  std::memcpy(h, data, sizeof(h));
  const int32_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], vocab = h[5], seq = h[6];
  bool plausible = dim > 0 && hidden > 0 && layers > 0 && layers <= 4096 && heads > 0 && kv_heads > 0 &&
                   kv_heads <= heads && heads % kv_heads == 0 && dim % heads == 0 && vocab != 0 &&
                   vocab > -(1 << 24) && vocab < (1 << 24) && seq > 0;
  return plausible ? (vocab < 0 ? -vocab : vocab) : 0;
}

// The tokenizer a lowbit .safetensors file embeds: metadata "lowbit.tokenizer" = kind, bytes in the U8 tensor
// "tokenizer.bytes". kind is "" when the file embeds none.
struct EmbeddedTokenizerView {
  std::string kind;
  const uint8_t* bytes = nullptr;
  size_t size = 0;
};

EmbeddedTokenizerView embedded_tokenizer(const SafeTensorsFile& f) {
  EmbeddedTokenizerView r;
  auto it = f.metadata.find("lowbit.tokenizer");
  if (it == f.metadata.end()) return r;
  const SafeTensorInfo* t = f.find("tokenizer.bytes");
  LB_CHECK(t, f.path, ": metadata lowbit.tokenizer = \"", it->second, "\" but there is no tensor \"tokenizer.bytes\"");
  LB_CHECK(t->dtype == "U8", f.path, ": tensor \"tokenizer.bytes\" has dtype ", t->dtype, ", expected U8");
  r.kind = it->second;
  r.bytes = t->data;
  r.size = t->nbytes;
  return r;
}

bool looks_like_tiktoken(const uint8_t* data, size_t size) {
  // First line: base64 characters, one space, decimal digits.
  size_t i = 0;
  while (i < size && (std::isalnum(data[i]) || data[i] == '+' || data[i] == '/' || data[i] == '=')) ++i;
  if (i == 0 || i >= size || data[i] != ' ') return false;
  size_t j = ++i;
  while (i < size && data[i] >= '0' && data[i] <= '9') ++i;
  return i > j && (i == size || data[i] == '\n' || data[i] == '\r');
}

std::unique_ptr<Tokenizer> load_from_memory(const uint8_t* data, size_t size, const std::string& name,
                                            const std::string& dir_hint, const std::string& kind_hint) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (kind_hint == "gguf" || kind_hint == "gguf-gpt2" || kind_hint == "gguf-llama" ||
      (kind_hint.empty() && size >= 4 && std::memcmp(data, "GGUF", 4) == 0))
    return tok::load_gguf_tokenizer(GgufFile::parse(data, size, name));
  if (kind_hint == "hf-bpe" || kind_hint == "hf-json") return tok::load_hf_tokenizer_json(text, name, dir_hint);
  if (kind_hint == "tiktoken") return tok::load_tiktoken_tokenizer(text, name);
  if (kind_hint == "llama2c") return tok::load_llama2c_tokenizer(data, size, name);
  LB_CHECK(kind_hint.empty(), name, ": unknown tokenizer kind \"", kind_hint,
           "\" (expected llama2c, tiktoken, hf-bpe/hf-json or gguf)");
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') return tok::load_hf_tokenizer_json(text, name, dir_hint);
  if (looks_like_tiktoken(data, size)) return tok::load_tiktoken_tokenizer(text, name);
  if (ends_with(name, ".model") && size > 0 && data[0] == 0x0A)
    fail(name, ": a SentencePiece protobuf model is not supported; use the llama2.c tokenizer.bin export or a "
               "tokenizer.json");
  return tok::load_llama2c_tokenizer(data, size, name);
}

}  // namespace

std::string find_tokenizer_for(const std::string& model_path, int vocab_size) {
  if (is_directory(model_path)) {
    for (const char* n : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"}) {
      std::string p = join(model_path, n);
      if (file_exists(p) && !is_directory(p)) return p;
    }
    return {};
  }
  if (!file_exists(model_path)) return {};
  if (ends_with(model_path, ".gguf")) return model_path;
  const std::string dir = parent_dir(model_path);
  if (ends_with(model_path, ".safetensors")) {
    if (!embedded_tokenizer(SafeTensorsFile::open(model_path)).kind.empty()) return model_path;
    for (const char* n : {"tokenizer.json", "tokenizer.model"})
      if (file_exists(join(dir, n))) return join(dir, n);
    return {};
  }
  if (ends_with(model_path, ".bin")) {
    if (vocab_size > 0 && file_exists(join(dir, cat("tok", vocab_size, ".bin")))) return join(dir, cat("tok", vocab_size, ".bin"));
    if (file_exists(join(dir, "tokenizer.bin"))) return join(dir, "tokenizer.bin");
    return {};
  }
  for (const char* n : {"tokenizer.json", "tokenizer.model"})
    if (file_exists(join(dir, n))) return join(dir, n);
  return {};
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (is_directory(path)) {
    std::string found = find_tokenizer_for(path, 0);
    LB_CHECK(!found.empty(), path, ": directory has no tokenizer.json, tokenizer.model or tokenizer.bin");
    return load_tokenizer(found);
  }
  if (ends_with(path, ".safetensors")) {
    SafeTensorsFile st = SafeTensorsFile::open(path);
    EmbeddedTokenizerView emb = embedded_tokenizer(st);
    if (!emb.kind.empty())
      return load_from_memory(emb.bytes, emb.size, path + " (tensor tokenizer.bytes)", "", emb.kind);
    std::string found = find_tokenizer_for(path, 0);
    LB_CHECK(!found.empty(), path, ": carries no tokenizer (no \"lowbit.tokenizer\" metadata) and none is beside it");
    return load_tokenizer(found);
  }
  auto f = MappedFile::open(path);
  const std::string dir = parent_dir(path);
  if (ends_with(path, ".bin")) {
    // A llama2.c model checkpoint: its tokenizer lies beside it.
    int vocab = llama2c_checkpoint_vocab(f->data(), f->size());
    if (vocab > 0) {
      std::string found = find_tokenizer_for(path, vocab);
      LB_CHECK(!found.empty(), path, ": llama2.c checkpoint (vocab ", vocab, ") with no tok", vocab,
               ".bin or tokenizer.bin beside it");
      return load_tokenizer(found);
    }
  }
  return load_from_memory(f->data(), f->size(), path, dir, "");
}

std::unique_ptr<Tokenizer> load_tokenizer_from_bytes(const std::string& kind, const uint8_t* data, size_t size,
                                                     const std::string& name) {
  LB_CHECK(!kind.empty(), name, ": tokenizer kind is empty (expected llama2c, tiktoken, hf-bpe or gguf)");
  return load_from_memory(data, size, name, "", kind);
}

void Tokenizer::init_specials(int bos, int eos, bool add_bos, std::vector<int> stops) {
  bos_ = bos;
  eos_ = eos;
  add_bos_ = add_bos;
  stops_ = std::move(stops);
  if (special_token_id("<|start_header_id|>") >= 0) chat_ = ChatStyle::Llama3;
  else if (special_token_id("<|im_start|>") >= 0) chat_ = ChatStyle::ChatML;
}

}  // namespace lowbit

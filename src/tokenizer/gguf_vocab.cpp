// The vocabulary embedded in a GGUF file: tokenizer.ggml.model "llama" (SentencePiece pieces + scores) or
// "gpt2" (byte-level BPE tokens + merges, tokenizer.ggml.pre naming the pre-tokenizer as llama.cpp does).
#include <algorithm>
#include <cstdio>

#include "io/gguf.h"
#include "tokenizer/internal.h"
#include "util/error.h"

namespace lowbit::tok {
namespace {

// llama.cpp's token types.
enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct PreSpec {
  std::vector<std::string> patterns;
  bool ignore_merges = false;
};

// The regex pipeline llama.cpp uses for each tokenizer.ggml.pre name (llama-vocab.cpp). SmolLM2 ("smollm")
// and the StarCoder family isolate every digit first, then apply the GPT-2 pattern.
PreSpec pre_tokenizer_for(const std::string& pre, const std::string& name) {
  static const std::vector<std::string> llama3 = {"llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx"};
  static const std::vector<std::string> gpt2 = {"gpt-2", "gpt2", "mpt", "olmo", "jais"};
  static const std::vector<std::string> digits_gpt2 = {"smollm", "starcoder", "refact", "command-r",
                                                       "codeshell", "exaone", "minerva"};
  static const std::vector<std::string> qwen2 = {"qwen2", "stablelm2"};
  auto in = [&](const std::vector<std::string>& names) { return std::find(names.begin(), names.end(), pre) != names.end(); };
  if (in(llama3)) return {{kLlama3Pattern}, true};
  if (in(gpt2)) return {{kGpt2Pattern}, false};
  if (in(digits_gpt2)) return {{R"(\p{N})", kGpt2Pattern}, false};
  if (in(qwen2)) return {{kQwen2Pattern}, false};
  if (pre == "default")
    return {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Pattern, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false};
  fail(name, ": tokenizer.ggml.pre \"", pre,
       "\" is not supported (known: default, llama-bpe/llama3, gpt-2, smollm/starcoder, qwen2)");
}

bool gguf_bool_or(const GgufFile& g, const std::string& key, bool def) {
  auto it = g.kv.find(key);
  if (it == g.kv.end()) return def;
  if (const bool* b = std::get_if<bool>(&it->second.v)) return *b;
  return g.get_int(key) != 0;
}

int token_id_or(const GgufFile& g, const std::string& key, int n_vocab) {
  if (!g.has(key)) return -1;
  int64_t id = g.get_int(key);
  LB_CHECK(id >= -1 && id < n_vocab, g.path, ": ", key, " = ", id, " is outside the vocabulary (", n_vocab, " tokens)");
  return static_cast<int>(id);
}

}  // namespace

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& g) {
  const std::string& name = g.path;
  LB_CHECK(g.has("tokenizer.ggml.model"), name, ": no tokenizer.ggml.model: the file carries no vocabulary");
  const std::string model = g.get_string("tokenizer.ggml.model");
  std::vector<std::string> tokens = g.get_string_array("tokenizer.ggml.tokens");
  const int n = static_cast<int>(tokens.size());
  LB_CHECK(n > 0, name, ": tokenizer.ggml.tokens is empty");
  std::vector<int64_t> types(tokens.size(), kNormal);
  if (g.has("tokenizer.ggml.token_type")) {
    types = g.get_int_array("tokenizer.ggml.token_type");
    LB_CHECK(types.size() == tokens.size(), name, ": tokenizer.ggml.token_type has ", types.size(), " entries for ",
             tokens.size(), " tokens");
  }
  const int bos = token_id_or(g, "tokenizer.ggml.bos_token_id", n);
  const int eos = token_id_or(g, "tokenizer.ggml.eos_token_id", n);
  std::vector<std::pair<std::string, int>> specials;
  for (int i = 0; i < n; ++i)
    if (types[static_cast<size_t>(i)] == kControl || types[static_cast<size_t>(i)] == kUserDefined)
      if (!tokens[static_cast<size_t>(i)].empty()) specials.emplace_back(tokens[static_cast<size_t>(i)], i);
  std::vector<int> stops;
  auto add_stop = [&](int id) {
    if (id >= 0 && std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);
  };
  add_stop(eos);
  add_stop(token_id_or(g, "tokenizer.ggml.eot_token_id", n));
  add_stop(token_id_or(g, "tokenizer.ggml.eom_token_id", n));
  for (const auto& [text, id] : specials)
    if (text == "<|im_end|>" || text == "<|eot_id|>" || text == "<|eom_id|>" || text == "<|end_of_text|>" ||
        text == "<|endoftext|>")
      add_stop(id);

  if (model == "llama") {
    SentencePieceVocab v;
    v.kind = "gguf-llama";
    v.origin = name;
    std::vector<double> scores = g.get_float_array("tokenizer.ggml.scores");
    LB_CHECK(scores.size() == tokens.size(), name, ": tokenizer.ggml.scores has ", scores.size(), " entries for ",
             tokens.size(), " tokens");
    v.byte_ids.fill(-1);
    v.decode_empty.assign(tokens.size(), 0);
    for (int i = 0; i < n; ++i) {
      // SentencePiece spells spaces as U+2581; the encoder works on real spaces.
      std::string p;
      const std::string& t = tokens[static_cast<size_t>(i)];
      for (size_t k = 0; k < t.size(); ++k) {
        if (t.compare(k, 3, "\xE2\x96\x81") == 0) {
          p += ' ';
          k += 2;
        } else {
          p += t[k];
        }
      }
      int64_t type = types[static_cast<size_t>(i)];
      if (type == kByte) {
        unsigned b = 0;
        LB_CHECK(p.size() == 6 && std::sscanf(p.c_str(), "<0x%2X>", &b) == 1, name, ": byte token ", i, " is \"", p,
                 "\", expected <0xXX>");
        v.byte_ids[b] = i;
      }
      if (type == kControl) v.decode_empty[static_cast<size_t>(i)] = 1;
      v.pieces.push_back(std::move(p));
      v.scores.push_back(static_cast<float>(scores[static_cast<size_t>(i)]));
    }
    v.specials = specials;
    v.bos = bos;
    v.eos = eos;
    v.add_bos = gguf_bool_or(g, "tokenizer.ggml.add_bos_token", true);
    v.add_dummy_prefix = gguf_bool_or(g, "tokenizer.ggml.add_space_prefix", true);
    v.stops = stops;
    return make_sentencepiece_tokenizer(std::move(v));
  }

  if (model == "gpt2") {
    ByteBpeVocab v;
    v.kind = "gguf-gpt2";
    v.origin = name;
    PreSpec pre = pre_tokenizer_for(g.get_string_or("tokenizer.ggml.pre", "default"), name);
    v.split_patterns = pre.patterns;
    v.whole_piece_lookup = pre.ignore_merges;
    const ByteUnicodeMap& bmap = byte_unicode_map();
    StringIdMap spelled;
    spelled.reserve(tokens.size());
    v.tokens.resize(tokens.size());
    v.is_special.assign(tokens.size(), 0);
    for (int i = 0; i < n; ++i) {
      const std::string& t = tokens[static_cast<size_t>(i)];
      spelled.insert(t, i);
      int64_t type = types[static_cast<size_t>(i)];
      if (type == kControl || type == kUserDefined) {
        v.tokens[static_cast<size_t>(i)] = t;
        v.is_special[static_cast<size_t>(i)] = 1;
      } else if (!bmap.decode(t, &v.tokens[static_cast<size_t>(i)])) {
        v.tokens[static_cast<size_t>(i)] = t;  // not byte-level spelled: unreachable by merges, decoded as text
      }
    }
    std::vector<std::string> merges = g.get_string_array("tokenizer.ggml.merges");
    v.merges.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      size_t sp = m.find(' ', 1);
      LB_CHECK(sp != std::string::npos && sp + 1 < m.size(), name, ": tokenizer.ggml.merges[", r, "] \"", m,
               "\" is not of the form \"a b\"");
      int a = spelled.find(std::string_view(m).substr(0, sp)), b = spelled.find(std::string_view(m).substr(sp + 1));
      LB_CHECK(a >= 0 && b >= 0, name, ": tokenizer.ggml.merges[", r, "] \"", m, "\" uses a token not in the vocabulary");
      v.merges.emplace_back(a, b);
    }
    v.specials = specials;
    v.bos = bos;
    v.eos = eos;
    v.add_bos = gguf_bool_or(g, "tokenizer.ggml.add_bos_token", pre.ignore_merges);
    v.stops = stops;
    return make_byte_bpe_tokenizer(std::move(v));
  }
  fail(name, ": tokenizer.ggml.model \"", model, "\" is not supported (llama or gpt2)");
}

}  // namespace lowbit::tok

// HF tokenizer.json, byte-level BPE only: model.type "BPE" with vocab + merges, a ByteLevel pre-tokenizer
// (optionally after Split regexes and Digits), added_tokens recognised as special tokens in text.
#include <nlohmann/json.hpp>

#include "tokenizer/internal.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace lowbit::tok {
namespace {

using nlohmann::json;

std::string regex_literal(const std::string& s) {
  // \Q...\E quotes everything but a literal "\E", which is closed, escaped, and reopened.
  std::string out = "\\Q";
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'E') {
      out += "\\E\\\\E\\Q";
      ++i;
    } else {
      out += s[i];
    }
  }
  return out + "\\E";
}

struct PreTokenizerSpec {
  std::vector<std::string> patterns;
  bool byte_level = false;
};

void parse_pre_tokenizer(const json& p, const std::string& name, PreTokenizerSpec& spec) {
  if (p.is_null()) return;
  LB_CHECK(p.is_object() && p.contains("type"), name, ": pre_tokenizer is not an object with a \"type\"");
  std::string type = p["type"].get<std::string>();
  if (type == "Sequence") {
    for (const json& q : p.value("pretokenizers", json::array())) parse_pre_tokenizer(q, name, spec);
  } else if (type == "Split") {
    std::string behavior = p.value("behavior", "Isolated");
    LB_CHECK(behavior == "Isolated", name, ": Split pre-tokenizer behavior \"", behavior,
             "\" is not supported (only \"Isolated\")");
    LB_CHECK(!p.value("invert", false), name, ": Split pre-tokenizer with invert=true is not supported");
    const json& pat = p.at("pattern");
    if (pat.contains("Regex")) spec.patterns.push_back(pat["Regex"].get<std::string>());
    else if (pat.contains("String")) spec.patterns.push_back(regex_literal(pat["String"].get<std::string>()));
    else fail(name, ": Split pre-tokenizer pattern has neither \"Regex\" nor \"String\"");
  } else if (type == "Digits") {
    spec.patterns.push_back(p.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
  } else if (type == "ByteLevel") {
    LB_CHECK(!p.value("add_prefix_space", false), name,
             ": ByteLevel pre-tokenizer with add_prefix_space=true is not supported");
    spec.byte_level = true;
    if (p.value("use_regex", true)) spec.patterns.push_back(kGpt2Pattern);
  } else {
    fail(name, ": pre-tokenizer \"", type, "\" is not supported (byte-level BPE: Sequence, Split, Digits, ByteLevel)");
  }
}

// The special token a TemplateProcessing post-processor puts first, "" when none.
std::string template_bos(const json& pp) {
  if (!pp.is_object()) return {};
  std::string type = pp.value("type", "");
  if (type == "Sequence") {
    for (const json& q : pp.value("processors", json::array())) {
      std::string s = template_bos(q);
      if (!s.empty()) return s;
    }
    return {};
  }
  if (type != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array() || pp["single"].empty())
    return {};
  const json& first = pp["single"][0];
  if (first.contains("SpecialToken")) return first["SpecialToken"].value("id", "");
  return {};
}

std::string token_text(const json& t) {
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return {};
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(std::string_view text, const std::string& name,
                                                  const std::string& dir_hint) {
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail(name, ": not valid JSON (", e.what(), ")");
  }
  try {
    LB_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), name,
             ": no \"model\" object (not a HF tokenizer.json?)");
    const json& model = j["model"];
    std::string type = model.value("type", "BPE");
    LB_CHECK(type == "BPE", name, ": model type \"", type, "\" is not supported (only byte-level BPE)");
    LB_CHECK(!model.value("byte_fallback", false), name,
             ": BPE with byte_fallback (SentencePiece-style) is not supported; only byte-level BPE");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const json& x = model.contains(key) ? model[key] : json();
      LB_CHECK(x.is_null() || (x.is_string() && x.get<std::string>().empty()), name, ": model.", key,
               " is not supported");
    }
    if (j.contains("normalizer") && !j["normalizer"].is_null()) {
      const json& nz = j["normalizer"];
      bool empty_sequence = nz.value("type", "") == "Sequence" && nz.value("normalizers", json::array()).empty();
      LB_CHECK(empty_sequence, name, ": normalizer \"", nz.value("type", "?"), "\" is not supported");
    }
    PreTokenizerSpec pre;
    parse_pre_tokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(), name, pre);
    LB_CHECK(pre.byte_level, name, ": no ByteLevel pre-tokenizer: only byte-level BPE tokenizer.json is supported");

    const ByteUnicodeMap& bmap = byte_unicode_map();
    ByteBpeVocab v;
    v.kind = "hf-bpe";
    v.origin = name;
    v.split_patterns = pre.patterns;
    v.whole_piece_lookup = model.value("ignore_merges", false);
    const json& vocab = model.at("vocab");
    LB_CHECK(vocab.is_object(), name, ": model.vocab is not an object");
    StringIdMap spelled;  // byte-level spelling -> id, to resolve merges
    spelled.reserve(vocab.size());
    int max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      LB_CHECK(it.value().is_number_integer(), name, ": vocab entry \"", it.key(), "\" has a non-integer id");
      int id = it.value().get<int>();
      LB_CHECK(id >= 0 && id < (1 << 30), name, ": vocab entry \"", it.key(), "\" has id ", id);
      spelled.insert(it.key(), id);
      max_id = std::max(max_id, id);
    }
    const json added = j.value("added_tokens", json::array());
    for (const json& t : added) {
      int id = t.at("id").get<int>();
      LB_CHECK(id >= 0, name, ": added token \"", t.value("content", ""), "\" has id ", id);
      max_id = std::max(max_id, id);
    }
    // Ids are (nearly) dense; a stray huge id must not size a huge table.
    const size_t n_tokens = vocab.size() + added.size();
    LB_CHECK(static_cast<size_t>(max_id) < 4 * n_tokens + 1024, name, ": token id ", max_id, " for only ", n_tokens,
             " tokens");
    v.tokens.assign(static_cast<size_t>(max_id) + 1, std::string());
    v.is_special.assign(v.tokens.size(), 0);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      std::string raw;
      // A spelling outside the byte table cannot come out of byte-level merges; keep its text for decode.
      if (!bmap.decode(it.key(), &raw)) raw = it.key();
      v.tokens[static_cast<size_t>(it.value().get<int>())] = std::move(raw);
    }
    for (const json& t : added) {
      int id = t.at("id").get<int>();
      std::string content = t.at("content").get<std::string>();
      LB_CHECK(!content.empty(), name, ": added token ", id, " has empty content");
      v.tokens[static_cast<size_t>(id)] = content;
      v.is_special[static_cast<size_t>(id)] = 1;
      v.specials.emplace_back(content, id);
    }
    const json& merges = model.at("merges");
    LB_CHECK(merges.is_array(), name, ": model.merges is not an array");
    v.merges.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const json& m = merges[r];
      std::string a, b;
      if (m.is_string()) {
        std::string s = m.get<std::string>();
        size_t sp = s.find(' ');
        LB_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
                 name, ": merge ", r, " \"", s, "\" is not of the form \"a b\"");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        fail(name, ": merge ", r, " is neither \"a b\" nor [a, b]");
      }
      int ia = spelled.find(a), ib = spelled.find(b);
      LB_CHECK(ia >= 0 && ib >= 0, name, ": merge ", r, " (\"", a, "\", \"", b, "\") uses a token not in the vocab");
      v.merges.emplace_back(ia, ib);
    }

    // BOS/EOS: tokenizer_config.json beside the file, else the post-processor template, else usual names.
    auto id_of = [&](const std::string& t) -> int {
      for (const auto& [text_, id] : v.specials)
        if (text_ == t) return id;
      return -1;
    };
    std::string bos_text = template_bos(j.contains("post_processor") ? j["post_processor"] : json());
    v.add_bos = !bos_text.empty();
    std::string eos_text;
    std::string config_path = dir_hint.empty() ? "" : dir_hint + "/tokenizer_config.json";
    if (!config_path.empty() && file_exists(config_path)) {
      json cfg;
      try {
        cfg = json::parse(read_text_file(config_path));
      } catch (const json::exception& e) {
        fail(config_path, ": not valid JSON (", e.what(), ")");
      }
      if (cfg.contains("bos_token") && !token_text(cfg["bos_token"]).empty()) bos_text = token_text(cfg["bos_token"]);
      if (cfg.contains("eos_token") && !token_text(cfg["eos_token"]).empty()) eos_text = token_text(cfg["eos_token"]);
      if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) v.add_bos = cfg["add_bos_token"].get<bool>();
    }
    for (const char* t : {"<|begin_of_text|>", "<s>"})
      if (bos_text.empty() && id_of(t) >= 0) bos_text = t;
    for (const char* t : {"<|end_of_text|>", "</s>", "<|endoftext|>"})
      if (eos_text.empty() && id_of(t) >= 0) eos_text = t;
    v.bos = bos_text.empty() ? -1 : id_of(bos_text);
    v.eos = eos_text.empty() ? -1 : id_of(eos_text);
    if (v.eos >= 0) v.stops.push_back(v.eos);
    for (const char* t : {"<|end_of_text|>", "<|eom_id|>", "<|eot_id|>", "<|im_end|>", "<|endoftext|>"}) {
      int id = id_of(t);
      if (id >= 0 && std::find(v.stops.begin(), v.stops.end(), id) == v.stops.end()) v.stops.push_back(id);
    }
    return make_byte_bpe_tokenizer(std::move(v));
  } catch (const json::exception& e) {
    fail(name, ": unexpected tokenizer.json structure (", e.what(), ")");
  }
}

}  // namespace lowbit::tok

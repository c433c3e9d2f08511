// Loaders for the two plain-file vocabularies: llama2.c tokenizer.bin and tiktoken tokenizer.model.
#include <algorithm>
#include <charconv>
#include <cstring>

#include "tokenizer/internal.h"
#include "util/error.h"

namespace lowbit::tok {
namespace {

bool is_byte_piece(std::string_view p, int* byte) {
  // "<0xAB>": exactly six characters, two upper/lower-case hex digits.
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return false;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    char c = p[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = v * 16 + d;
  }
  *byte = v;
  return true;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with '=' padding; false on any malformed input.
bool base64_decode(std::string_view in, std::string* out) {
  out->clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + static_cast<size_t>(k)];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad) return false;  // data after padding
        v[k] = base64_value(c);
        if (v[k] < 0) return false;
      }
    }
    uint32_t w = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                 (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out->push_back(static_cast<char>(w >> 16));
    if (pad < 2) out->push_back(static_cast<char>((w >> 8) & 0xFF));
    if (pad < 1) out->push_back(static_cast<char>(w & 0xFF));
  }
  return true;
}

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const uint8_t* data, size_t size, const std::string& name) {
  LB_CHECK(size >= 4, name, ": llama2.c tokenizer file is ", size, " bytes, too small for its 4-byte header");
  int32_t max_len;
  std::memcpy(&max_len, data, 4);
  LB_CHECK(max_len > 0 && max_len <= (1 << 16), name, ": llama2.c tokenizer header max_token_length = ", max_len,
           ", expected 1..65536 (not a tokenizer.bin?)");
  SentencePieceVocab v;
  v.kind = "llama2c";
  v.origin = name;
  size_t off = 4;
  while (off < size) {
    size_t i = v.pieces.size();
    LB_CHECK(size - off >= 8, name, ": truncated at token ", i, " (offset ", off, "): ", size - off,
             " bytes left, expected an 8-byte score+length record");
    float score;
    int32_t len;
    std::memcpy(&score, data + off, 4);
    std::memcpy(&len, data + off + 4, 4);
    off += 8;
    LB_CHECK(len >= 0 && len <= max_len, name, ": token ", i, " has length ", len, ", expected 0..", max_len,
             " (the header's max_token_length)");
    LB_CHECK(size - off >= static_cast<size_t>(len), name, ": truncated at token ", i, " (offset ", off, "): ",
             len, " bytes expected, ", size - off, " left");
    v.pieces.emplace_back(reinterpret_cast<const char*>(data + off), static_cast<size_t>(len));
    v.scores.push_back(score);
    off += static_cast<size_t>(len);
  }
  LB_CHECK(v.pieces.size() >= 3, name, ": only ", v.pieces.size(), " tokens, expected at least <unk>, <s>, </s>");
  // llama2.c fixes the layout: 0 <unk>, 1 <s>, 2 </s>, then the 256 byte tokens <0x00>..<0xFF> (byte + 3).
  v.byte_ids.fill(-1);
  for (int b = 0; b < 256; ++b) {
    size_t id = static_cast<size_t>(b) + 3;
    int parsed;
    if (id < v.pieces.size() && is_byte_piece(v.pieces[id], &parsed) && parsed == b) v.byte_ids[static_cast<size_t>(b)] = static_cast<int>(id);
  }
  v.decode_empty.assign(v.pieces.size(), 0);
  v.decode_empty[1] = v.decode_empty[2] = 1;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  v.stops = {2, 1};  // run.c ends a story at BOS: it delimits sequences in the training data
  return make_sentencepiece_tokenizer(std::move(v));
}

std::vector<std::string> llama3_special_token_names() {
  std::vector<std::string> names = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                                    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                                    "<|python_tag|>", "<|image|>"};
  for (int i = 2; i <= 245; ++i) names.push_back(cat("<|reserved_special_token_", i, "|>"));
  return names;  // 256 names, ids 128000..128255
}

std::unique_ptr<Tokenizer> load_tiktoken_tokenizer(std::string_view text, const std::string& name) {
  ByteBpeVocab v;
  v.kind = "tiktoken";
  v.origin = name;
  v.merge_by_rank = true;
  v.whole_piece_lookup = true;
  v.split_patterns = {kLlama3Pattern};
  std::vector<std::pair<int, std::string>> ranked;
  ranked.reserve(text.size() / 16);
  size_t pos = 0, line_no = 0;
  int max_rank = -1;
  std::string bytes;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    std::string_view b64 = line.substr(0, sp), rank_text = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    int rank = -1;
    auto [end, ec] = std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    bool ok = sp != std::string_view::npos && ec == std::errc() && end == rank_text.data() + rank_text.size() &&
              !rank_text.empty() && rank >= 0 && rank < (1 << 30) && base64_decode(b64, &bytes);
    if (!ok) {
      std::string shown(line.substr(0, 60));
      fail(name, ":", line_no, ": malformed tiktoken line \"", shown, line.size() > 60 ? "..." : "",
           "\", expected '<base64 token> <rank>'");
    }
    ranked.emplace_back(rank, bytes);
    max_rank = std::max(max_rank, rank);
  }
  LB_CHECK(!ranked.empty(), name, ": no tokens (empty tiktoken file)");
  // Ranks are ids: they must be 0..N-1 (a stray huge rank must not size a huge table).
  LB_CHECK(static_cast<size_t>(max_rank) < ranked.size(), name, ": rank ", max_rank, " but only ", ranked.size(),
           " tokens: ranks must be 0..N-1");
  v.tokens.assign(static_cast<size_t>(max_rank) + 1, std::string());
  std::vector<uint8_t> seen(v.tokens.size(), 0);
  for (auto& [rank, b] : ranked) {
    LB_CHECK(!seen[static_cast<size_t>(rank)], name, ": rank ", rank, " appears twice");
    seen[static_cast<size_t>(rank)] = 1;
    v.tokens[static_cast<size_t>(rank)] = std::move(b);
  }
  v.is_special.assign(v.tokens.size(), 0);
  if (v.tokens.size() == 128000) {
    // Llama-3: the 256 special tokens follow the 128000 ranks (ids and order fixed by Meta's tokenizer).
    auto names = llama3_special_token_names();
    for (size_t i = 0; i < names.size(); ++i) {
      int id = static_cast<int>(128000 + i);
      v.tokens.push_back(names[i]);
      v.is_special.push_back(1);
      v.specials.emplace_back(names[i], id);
    }
    v.bos = 128000;
    v.eos = 128001;
    v.stops = {128001, 128008, 128009};
  }
  return make_byte_bpe_tokenizer(std::move(v));
}

}  // namespace lowbit::tok

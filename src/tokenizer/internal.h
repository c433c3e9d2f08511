// Pieces shared by the tokenizer implementations (not part of the public API).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/string_map.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {
class GgufFile;
}

namespace lowbit::tok {

// GPT-2's byte <-> printable code point table (bytes_to_unicode): byte-level BPE vocabularies spell each
// raw byte as one of these 256 code points so that every token is printable text.
struct ByteUnicodeMap {
  std::array<uint32_t, 256> byte_to_cp;
  std::array<int16_t, 324> cp_to_byte;  // -1 for code points outside the table (all are < 324)
  ByteUnicodeMap();
  // Raw bytes of a byte-level token spelling; false (out untouched) when a code point is not in the table.
  bool decode(std::string_view spelled, std::string* out) const;
  // The byte-level spelling of raw bytes (UTF-8).
  std::string encode(std::string_view raw) const;
};
const ByteUnicodeMap& byte_unicode_map();

void append_utf8(std::string& out, uint32_t cp);

// ---- SentencePiece-style BPE by scores (llama2.c tokenizer.bin, GGUF "llama") ------------------------
struct SentencePieceVocab {
  std::string kind;                 // "llama2c" or "gguf-llama"
  std::string origin;               // file name, for errors
  std::vector<std::string> pieces;  // spaces written as ' ' (not U+2581); byte tokens as "<0xXX>"
  std::vector<float> scores;
  std::vector<uint8_t> decode_empty;  // 1: the token decodes to nothing (BOS/EOS/control)
  std::array<int, 256> byte_ids;    // id of the <0xXX> token of each byte, -1 when absent
  std::vector<std::pair<std::string, int>> specials;  // recognised in text (GGUF control/user tokens)
  int bos = -1, eos = -1;
  bool add_bos = true;
  bool add_dummy_prefix = true;  // a space in front of the text (GGUF tokenizer.ggml.add_space_prefix)
  std::vector<int> stops;
};
std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(SentencePieceVocab vocab);

// ---- byte-level BPE (tiktoken, HF tokenizer.json, GGUF "gpt2") ----------------------------------------
struct ByteBpeVocab {
  std::string kind;                // "tiktoken", "hf-bpe", "gguf-gpt2"
  std::string origin;
  std::vector<std::string> tokens;  // raw bytes of each id (specials: their text); size = vocab size
  std::vector<uint8_t> is_special;  // 1 for special/added tokens (not used by BPE, decoded as their text)
  // Either merges by rank of the concatenated bytes (tiktoken: rank == id), or an explicit merge list.
  bool merge_by_rank = false;
  std::vector<std::pair<int, int>> merges;  // (left id, right id) in rank order, when !merge_by_rank
  bool whole_piece_lookup = false;  // look each pre-token up whole before merging (tiktoken, ignore_merges)
  std::vector<std::pair<std::string, int>> specials;  // recognised in text
  std::vector<std::string> split_patterns;             // pre-tokenizer regex pipeline
  int bos = -1, eos = -1;
  bool add_bos = true;
  std::vector<int> stops;
};
std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(ByteBpeVocab vocab);

// Chat style a vocabulary supports, from the special tokens it has.
enum class ChatKind { None, Llama3, ChatML };

// The 256 Llama-3 special token names, for ids 128000..128255.
std::vector<std::string> llama3_special_token_names();

// ---- loaders --------------------------------------------------------------------------------------
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const uint8_t* data, size_t size, const std::string& name);
std::unique_ptr<Tokenizer> load_tiktoken_tokenizer(std::string_view text, const std::string& name);
// `dir_hint`: the directory the file is in ("" from memory), to read tokenizer_config.json beside it.
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(std::string_view text, const std::string& name,
                                                  const std::string& dir_hint);
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& gguf);

}  // namespace lowbit::tok

// Tokenizer tests on the real vocabularies in ../shared/models and the SmolLM2 GGUF, with expected ids from
// ../shared/models/README.md (Llama-2/Llama-3) or computed once with HF `tokenizers` (SmolLM2, see below).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "../test_util.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace lowbit {
namespace {

using test::llama2_tokenizer;
using test::llama3_tokenizer;
using test::smollm2;
using test::tok512;

std::string temp_dir() {
  char tmpl[] = "/tmp/lowbit_tok_test_XXXXXX";
  const char* d = mkdtemp(tmpl);
  return d ? std::string(d) : std::string("/tmp");
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Expects `f` to throw lowbit::Error whose message contains every string in `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

// Random valid UTF-8: ASCII-heavy, with Latin-1, Greek/Cyrillic, CJK, emoji, and whitespace runs.
std::string random_utf8(std::mt19937& rng, size_t n_chars) {
  std::string s;
  auto put = [&](uint32_t cp) {
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    } else {
      s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F)), s += char(0x80 | ((cp >> 6) & 0x3F)),
          s += char(0x80 | (cp & 0x3F));
    }
  };
  std::uniform_int_distribution<int> kind(0, 9);
  for (size_t i = 0; i < n_chars; ++i) {
    switch (kind(rng)) {
      case 0: put(std::uniform_int_distribution<uint32_t>(0xA0, 0x17F)(rng)); break;
      case 1: put(std::uniform_int_distribution<uint32_t>(0x370, 0x4FF)(rng)); break;
      case 2: put(std::uniform_int_distribution<uint32_t>(0x4E00, 0x9FFF)(rng)); break;
      case 3: put(std::uniform_int_distribution<uint32_t>(0x1F600, 0x1F64F)(rng)); break;
      case 4: put(" \t\n\r"[std::uniform_int_distribution<int>(0, 3)(rng)]); break;
      case 5: put(std::uniform_int_distribution<uint32_t>('0', '9')(rng)); break;
      default: put(std::uniform_int_distribution<uint32_t>(0x20, 0x7E)(rng)); break;
    }
  }
  return s;
}

std::string random_bytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = char(std::uniform_int_distribution<int>(0, 255)(rng));
  return s;
}

// ---- llama2.c tokenizer.bin -------------------------------------------------------------------------

TEST(TokenizerLlama2, ReadmeVectors) {
  LOWBIT_REQUIRE_FILE(llama2_tokenizer());
  auto tok = load_tokenizer(llama2_tokenizer());
  EXPECT_EQ(tok->kind(), "llama2c");
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->encode("", true), (std::vector<int>{1}));
  EXPECT_EQ(tok->encode("I believe the meaning of life is", true),
            (std::vector<int>{1, 306, 4658, 278, 6593, 310, 2834, 338}));
  EXPECT_EQ(tok->encode("Simply put, the theory of relativity states that ", true),
            (std::vector<int>{1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871}));
  EXPECT_EQ(tok->encode("A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n        I just ",
                        true),
            (std::vector<int>{1,    319,  11473, 2643, 378, 629,   271,   18099, 278,  3815, 373, 278,   6826,
                              29901, 13,  13,    4706, 6324, 14332, 29892, 13,   13,   4706, 306, 925, 29871}));
  EXPECT_EQ(tok->encode("I believe", true, true).back(), 2);
}

TEST(TokenizerLlama2, DecodeDropsSpaceAfterBosAndMapsBytes) {
  LOWBIT_REQUIRE_FILE(llama2_tokenizer());
  auto tok = load_tokenizer(llama2_tokenizer());
  for (std::string s : {"I believe the meaning of life is", "Simply put, the theory of relativity states that ",
                        "A brief message:\n\n        Hi everyone,\n", "naïve café Việt 日本語 🙂"}) {
    EXPECT_EQ(tok->decode_all(tok->encode(s, true)), s);
    EXPECT_EQ(tok->decode_all(tok->encode(s, false)), " " + s);  // the dummy prefix stays without BOS
  }
  EXPECT_EQ(tok->decode(1, 306), "I");   // " I" after BOS
  EXPECT_EQ(tok->decode(306, 306), " I");
  EXPECT_EQ(tok->decode(0, 13), "\n");   // <0x0A>
  EXPECT_EQ(tok->decode(0, 1), "");       // BOS itself prints nothing
  EXPECT_EQ(tok->stop_ids(), (std::vector<int>{2, 1}));
  EXPECT_FALSE(tok->has_chat_template());
  expect_error([&] { tok->decode(0, 32000); }, {"out of range"});
  expect_error([&] { tok->encode_chat({{"user", "hi"}}, true); }, {"no chat format"});
}

// run.c's encode() written out literally (O(n^2) rescans, sorted-vocab lookups): the reference the
// heap-based encoder must match token for token.
struct Llama2cReference {
  std::vector<std::string> vocab;
  std::vector<float> scores;
  std::map<std::string, int> ids;
  explicit Llama2cReference(const std::string& path) {
    std::string d = read_text_file(path);
    size_t o = 4;
    while (o < d.size()) {
      float s;
      int32_t len;
      std::memcpy(&s, d.data() + o, 4);
      std::memcpy(&len, d.data() + o + 4, 4);
      o += 8;
      vocab.push_back(d.substr(o, size_t(len)));
      scores.push_back(s);
      o += size_t(len);
    }
    for (size_t i = 0; i < vocab.size(); ++i) ids.emplace(vocab[i], int(i));  // first wins, like bsearch on unique keys
  }
  int lookup(const std::string& s) const {
    auto it = ids.find(s);
    return it == ids.end() ? -1 : it->second;
  }
  std::vector<int> encode(const std::string& text, bool bos) const {
    std::vector<int> t;
    if (bos) t.push_back(1);
    if (!text.empty()) t.push_back(lookup(" "));
    std::string buf;
    for (size_t i = 0; i < text.size(); ++i) {
      if ((uint8_t(text[i]) & 0xC0) != 0x80) buf.clear();
      buf += text[i];
      if (i + 1 < text.size() && (uint8_t(text[i + 1]) & 0xC0) == 0x80 && buf.size() < 4) continue;
      int id = lookup(buf);
      if (id != -1) t.push_back(id);
      else
        for (char c : buf) t.push_back(int(uint8_t(c)) + 3);
      buf.clear();
    }
    for (;;) {
      float best = -1e10f;
      int best_id = -1, best_i = -1;
      for (size_t i = 0; i + 1 < t.size(); ++i) {
        int id = lookup(vocab[size_t(t[i])] + vocab[size_t(t[i + 1])]);
        if (id != -1 && scores[size_t(id)] > best) best = scores[size_t(id)], best_id = id, best_i = int(i);
      }
      if (best_i == -1) break;
      t[size_t(best_i)] = best_id;
      t.erase(t.begin() + best_i + 1);
    }
    return t;
  }
};

TEST(TokenizerLlama2, MatchesRunCEncodeOnRandomText) {
  for (const std::string& path : {tok512(), llama2_tokenizer()}) {
    LOWBIT_REQUIRE_FILE(path);
    auto tok = load_tokenizer(path);
    Llama2cReference ref(path);
    std::mt19937 rng(1234);
    for (int i = 0; i < 40; ++i) {
      std::string s = random_utf8(rng, size_t(1 + i * 3));
      ASSERT_EQ(tok->encode(s, true), ref.encode(s, true)) << path << " text: " << s;
    }
    // Longer texts of words and space runs: many merges per word, and the word-wise split is exercised.
    const char* words[] = {"the", "little", "girl", "named", "Lily", "played", "outside,", "\"Hi!\"", "and", "\n"};
    for (int i = 0; i < 3; ++i) {
      std::string s;
      while (s.size() < 600) {
        s += words[std::uniform_int_distribution<int>(0, 9)(rng)];
        s += std::string(size_t(std::uniform_int_distribution<int>(0, 5)(rng) == 0 ? 3 : 1), ' ');
      }
      ASSERT_EQ(tok->encode(s, true), ref.encode(s, true)) << path << " text: " << s;
    }
    // Malformed UTF-8 (stray continuation bytes, truncated sequences) is cut exactly as run.c cuts it.
    for (int i = 0; i < 20; ++i) {
      std::string s = random_bytes(rng, size_t(1 + i * 2));
      std::replace(s.begin(), s.end(), '\0', 'x');  // run.c stops at NUL
      ASSERT_EQ(tok->encode(s, false), ref.encode(s, false)) << path;
    }
  }
}

TEST(TokenizerLlama2, Tok512RoundTrips) {
  LOWBIT_REQUIRE_FILE(tok512());
  auto tok = load_tokenizer(tok512());
  EXPECT_EQ(tok->vocab_size(), 512);
  std::mt19937 rng(7);
  std::vector<std::string> texts = {"Once upon a time, there was a little girl named Lily.",
                                    "She said, \"I want to play with your ball.\"\n\nThe end.", "x", " ",
                                    "Ünïcödé 漢字 🙂 falls back to bytes"};
  for (int i = 0; i < 30; ++i) texts.push_back(random_utf8(rng, size_t(5 + 7 * i)));
  for (const auto& s : texts) {
    auto ids = tok->encode(s, true);
    for (int id : ids) ASSERT_TRUE(id >= 0 && id < 512);
    EXPECT_EQ(tok->decode_all(ids), s);
  }
  // A long text merges in O(n log n): 300 KB would take minutes with run.c's rescans.
  std::string long_text;
  while (long_text.size() < 300000) long_text += "Once upon a time, there was a little girl named Lily. ";
  EXPECT_EQ(tok->decode_all(tok->encode(long_text, true)), long_text);
}

// ---- tiktoken (Llama-3) -------------------------------------------------------------------------------

TEST(TokenizerLlama3, ReadmeVectors) {
  LOWBIT_REQUIRE_FILE(llama3_tokenizer());
  auto tok = load_tokenizer(llama3_tokenizer());
  EXPECT_EQ(tok->kind(), "tiktoken");
  EXPECT_EQ(tok->vocab_size(), 128256);
  EXPECT_EQ(tok->bos_id(), 128000);
  EXPECT_EQ(tok->eos_id(), 128001);
  EXPECT_EQ(tok->stop_ids(), (std::vector<int>{128001, 128008, 128009}));
  EXPECT_EQ(tok->encode("This is a test sentence.", true, true),
            (std::vector<int>{128000, 2028, 374, 264, 1296, 11914, 13, 128001}));
  EXPECT_EQ(tok->encode("Hello world", false), (std::vector<int>{9906, 1917}));
  EXPECT_EQ(tok->encode(" Hello world", false), (std::vector<int>{22691, 1917}));
  EXPECT_EQ(tok->encode(" Việt", false), (std::vector<int>{101798}));
  EXPECT_EQ(tok->encode("", false), (std::vector<int>{}));

  ASSERT_TRUE(tok->has_chat_template());
  // README: one user message is 128006 882 128007 271 ... 128009; a dialog starts with <|begin_of_text|>.
  EXPECT_EQ(tok->encode_chat({{"user", "This is a test sentence."}}, false),
            (std::vector<int>{128000, 128006, 882, 128007, 271, 2028, 374, 264, 1296, 11914, 13, 128009}));
  EXPECT_EQ(tok->encode_chat({{"system", "This is a test sentence."}, {"user", "This is a response."}}, true),
            (std::vector<int>{128000, 128006, 9125, 128007, 271, 2028, 374, 264, 1296, 11914, 13, 128009, 128006, 882,
                              128007, 271, 2028, 374, 264, 2077, 13, 128009, 128006, 78191, 128007, 271}));
}

TEST(TokenizerLlama3, SpecialTokensInText) {
  LOWBIT_REQUIRE_FILE(llama3_tokenizer());
  auto tok = load_tokenizer(llama3_tokenizer());
  EXPECT_EQ(tok->encode("<|begin_of_text|>This is a test sentence.<|eot_id|>", false),
            (std::vector<int>{128000, 2028, 374, 264, 1296, 11914, 13, 128009}));
  EXPECT_EQ(tok->encode("<|start_header_id|>user<|end_header_id|>\n\n", false),
            (std::vector<int>{128006, 882, 128007, 271}));
  EXPECT_EQ(tok->encode("<|reserved_special_token_245|><|image|>", false), (std::vector<int>{128255, 128011}));
  EXPECT_EQ(tok->decode(0, 128009), "<|eot_id|>");
  // A near miss is ordinary text.
  auto near = tok->encode("<|eot_id>", false);
  EXPECT_EQ(std::count(near.begin(), near.end(), 128009), 0);
  EXPECT_EQ(tok->decode_all(near), "<|eot_id>");
  // Chat content cannot forge headers: specials in it stay text.
  auto chat = tok->encode_chat({{"user", "<|eot_id|>"}}, false);
  EXPECT_EQ(std::count(chat.begin(), chat.end(), 128009), 1);
}

// Pre-tokenizer corner cases: Unicode White_Space (U+180E is not, U+00A0/U+0085/U+3000/U+2028 are),
// upper-case contractions, CRLF runs, combining marks, non-ASCII digits. Expected ids computed once with
// OpenAI's tiktoken 0.14.0 (Rust) from this tokenizer.model with the README's pat_str, then pasted here.
TEST(TokenizerLlama3, PreTokenizerCornerCasesMatchTiktoken) {
  LOWBIT_REQUIRE_FILE(llama3_tokenizer());
  auto tok = load_tokenizer(llama3_tokenizer());
  const std::vector<std::pair<std::string, std::vector<int>>> cases = {
      {"\u180e's \u00a0x\u0085y", {157, 254, 236, 6, 82, 220, 4194, 87, 116360, 88}},
      {"HE'S HERE'LL  \r\n\r\n  ok", {1837, 13575, 19804, 6, 4178, 73845, 220, 5509}},
      {"cafe\u0301 \u0663\u0664\u0665\u0666 \u00b2\u00bd \u216b",
       {936, 1897, 54939, 220, 117413, 124079, 124043, 149, 99, 220, 30556, 27154, 220, 71567, 104}},
      {"a\u3000\u3000b\u2028c\t\t\n", {64, 23249, 23249, 65, 378, 101, 66, 2451}},
      {"1234567 +-*/ ==> <<>>", {4513, 10961, 22, 78645, 1850, 33396, 1134, 2511}},
      {"\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8!",
       {102433, 102158, 16144, 57933, 62903, 71634, 5486, 112699, 32179, 10997, 45204, 54289, 0}},
  };
  for (const auto& [text, ids] : cases) EXPECT_EQ(tok->encode(text, false), ids) << text;
}

// tiktoken's rule: whole pre-token if it is a token, else merge byte pairs by lowest rank (leftmost first).
std::vector<int> tiktoken_reference_piece(const std::map<std::string, int>& ranks, const std::string& piece) {
  auto whole = ranks.find(piece);
  if (whole != ranks.end()) return {whole->second};
  std::vector<std::string> parts;
  for (char c : piece) parts.emplace_back(1, c);
  for (;;) {
    int best = -1, best_rank = 1 << 30;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = ranks.find(parts[i] + parts[i + 1]);
      if (it != ranks.end() && it->second < best_rank) best_rank = it->second, best = int(i);
    }
    if (best < 0) break;
    parts[size_t(best)] += parts[size_t(best) + 1];
    parts.erase(parts.begin() + best + 1);
  }
  std::vector<int> ids;
  for (auto& p : parts) ids.push_back(ranks.at(p));
  return ids;
}

TEST(TokenizerLlama3, MergesMatchTiktokenRuleOnSinglePieces) {
  LOWBIT_REQUIRE_FILE(llama3_tokenizer());
  auto tok = load_tokenizer(llama3_tokenizer());
  std::map<std::string, int> ranks;
  for (int i = 0; i < 128000; ++i) ranks.emplace(tok->decode(-1, i), i);
  std::mt19937 rng(99);
  // Runs of lowercase letters (one pre-token each: \p{L}+), short and past the small-piece path (48 bytes).
  for (int i = 0; i < 60; ++i) {
    std::string s;
    size_t n = size_t(1 + (i * 7) % 130);
    for (size_t k = 0; k < n; ++k) s += char('a' + std::uniform_int_distribution<int>(0, 25)(rng));
    ASSERT_EQ(tok->encode(s, false), tiktoken_reference_piece(ranks, s)) << s;
  }
}

TEST(TokenizerLlama3, ByteLevelRoundTrips) {
  LOWBIT_REQUIRE_FILE(llama3_tokenizer());
  auto tok = load_tokenizer(llama3_tokenizer());
  std::mt19937 rng(42);
  for (int i = 0; i < 50; ++i) {
    std::string s = random_utf8(rng, size_t(1 + i * 11));
    ASSERT_EQ(tok->decode_all(tok->encode(s, false)), s);
  }
  for (int i = 0; i < 50; ++i) {
    std::string s = random_bytes(rng, size_t(1 + i * 9));
    ASSERT_EQ(tok->decode_all(tok->encode(s, false)), s);
  }
  // One pre-token of 256 KiB (a punctuation run) merges through the heap, not quadratically.
  std::string run(1 << 18, '=');
  EXPECT_EQ(tok->decode_all(tok->encode(run, false)), run);
  std::string spaces(1 << 18, ' ');
  EXPECT_EQ(tok->decode_all(tok->encode(spaces + "x", false)), spaces + "x");
}

// ---- SmolLM2 GGUF (gpt2 byte-level BPE, pre "smollm") --------------------------------------------------

// Reference ids: a tokenizer.json was built from this GGUF's tokens/merges with the `gguf` Python package
// (pre_tokenizer Sequence[Digits(individual_digits), ByteLevel(use_regex)], as SmolLM2's tokenizer.json
// has) and these sentences were encoded once with HF `tokenizers` 0.23.3 (Rust), then pasted here.
struct Vector {
  std::string text;
  std::vector<int> ids;
};
const std::vector<Vector>& smollm2_vectors() {
  static const std::vector<Vector> v = {
      {"Hello world", {19556, 905}},
      {"The year 2024 had 366 days; pi is 3.14159.",
       {504, 713, 216, 34, 32, 34, 36, 761, 216, 35, 38, 38, 2009, 43, 16916, 314, 216, 35, 30, 33, 36, 33, 37, 41, 30}},
      {"  multiple   spaces\tand\ttabs\n\nnew lines\r\n end ",
       {216, 2701, 256, 5600, 197, 397, 197, 100, 7366, 198, 198, 2241, 3204, 2738, 1112, 216}},
      {"Unicode: café, naïve, Việt Nam, 日本語, emoji 🙂!",
       {3706, 15817, 42, 37366, 28, 15486, 46494, 28, 10506, 25275, 225, 100, 18620,
        28,   17097, 241, 115, 40993, 179, 120, 248, 28, 649, 33777, 47526, 17}},
      {"It's a dog's life, isn't it? I'm sure we'll see\xE2\x80\x94they've said \"ok\".",
       {1589, 506, 253, 2767, 506, 1029, 28, 3247, 982, 357, 47, 339, 5248, 2090, 392, 3060, 963, 1265, 11518, 3543,
        1137, 476, 2231, 2227}},
      {"<|im_start|>user\nWhat is 12*34?<|im_end|>\n", {1, 4093, 198, 1780, 314, 216, 33, 34, 26, 35, 36, 47, 2, 198}},
      {"def f(x):\n    return x**2 + 10\n", {1604, 275, 24, 104, 727, 472, 1003, 1792, 828, 34, 1232, 216, 33, 32, 198}},
  };
  return v;
}

TEST(TokenizerGguf, SmolLM2Vectors) {
  LOWBIT_REQUIRE_FILE(smollm2());
  auto tok = load_tokenizer(smollm2());
  EXPECT_EQ(tok->kind(), "gguf-gpt2");
  EXPECT_EQ(tok->vocab_size(), 49152);
  for (const auto& v : smollm2_vectors()) {
    EXPECT_EQ(tok->encode(v.text, false), v.ids) << v.text;
    EXPECT_EQ(tok->decode_all(v.ids), v.text);
  }
  // add_bos_token is false in this file: bos adds nothing; eos is <|im_end|>.
  EXPECT_FALSE(tok->adds_bos());
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<int>{19556, 905}));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  auto stops = tok->stop_ids();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 2), stops.end());  // <|im_end|>
  EXPECT_NE(std::find(stops.begin(), stops.end(), 0), stops.end());  // <|endoftext|>
}

// The same corner cases through HF tokenizers 0.23.3 with the SmolLM2 tokenizer.json described above.
TEST(TokenizerGguf, SmolLM2PreTokenizerCornerCases) {
  LOWBIT_REQUIRE_FILE(smollm2());
  auto tok = load_tokenizer(smollm2());
  const std::vector<std::pair<std::string, std::vector<int>>> cases = {
      {"\u180e's \u00a0x\u0085y", {172, 250, 232, 23, 99, 216, 15442, 104, 141, 223, 105}},
      {"HE'S HERE'LL  \r\n\r\n  ok", {4493, 23, 67, 27873, 23, 16421, 256, 18682, 216, 10907}},
      {"cafe\u0301 \u0663\u0664\u0665\u0666 \u00b2\u00bd \u216b",
       {83, 9980, 151, 219, 216, 164, 113, 164, 114, 164, 115, 164, 116, 216, 19133, 16738, 216, 173, 223, 121}},
      {"a\u3000\u3000b\u2028c\t\t\n", {81, 12109, 218, 12109, 218, 82, 321, 118, 83, 1656, 198}},
      {"1234567 +-*/ ==> <<>>", {33, 34, 35, 36, 37, 38, 39, 1232, 29, 26, 31, 1758, 46, 22646, 7791}},
  };
  for (const auto& [text, ids] : cases) EXPECT_EQ(tok->encode(text, false), ids) << text;
}

TEST(TokenizerGguf, SmolLM2ChatML) {
  LOWBIT_REQUIRE_FILE(smollm2());
  auto tok = load_tokenizer(smollm2());
  ASSERT_TRUE(tok->has_chat_template());
  // The same conversation written out as text (specials recognised) must give the same ids.
  std::vector<ChatMessage> dialog = {{"system", "You are helpful."}, {"user", "What is 12*34?"}};
  std::string written =
      "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 12*34?<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(tok->encode_chat(dialog, true), tok->encode(written, false));
  auto ids = tok->encode_chat({{"user", "What is 12*34?"}}, false);
  EXPECT_EQ(ids, (std::vector<int>{1, 4093, 198, 1780, 314, 216, 33, 34, 26, 35, 36, 47, 2, 198}));
}

TEST(TokenizerGguf, SmolLM2ByteLevelRoundTrips) {
  LOWBIT_REQUIRE_FILE(smollm2());
  auto tok = load_tokenizer(smollm2());
  // The vocabulary leaves out some bytes (0x04, 0xF5..0xFF, ...): like llama.cpp and HF (no unk_token),
  // they produce no token and do not join merges. HF tokenizers gives "a\x04b" -> [81, 82].
  std::vector<char> representable;
  int dropped = 0;
  for (int b = 0; b < 256; ++b) {
    if (tok->encode(std::string(1, char(b)), false).empty()) ++dropped;
    else representable.push_back(char(b));
  }
  EXPECT_GT(dropped, 0);
  EXPECT_EQ(tok->encode("a\x04" "b", false), (std::vector<int>{81, 82}));
  EXPECT_GE(representable.size(), 200u);
  std::mt19937 rng(5);
  for (int i = 0; i < 40; ++i) {
    std::string s = random_utf8(rng, size_t(1 + i * 13));
    ASSERT_EQ(tok->decode_all(tok->encode(s, false)), s);
    std::string b(size_t(1 + i * 5), ' ');
    for (auto& c : b) c = representable[std::uniform_int_distribution<size_t>(0, representable.size() - 1)(rng)];
    ASSERT_EQ(tok->decode_all(tok->encode(b, false)), b);
  }
}

// ---- HF tokenizer.json ---------------------------------------------------------------------------------

// Writes SmolLM2's vocabulary (read back through GgufFile) as a tokenizer.json, merges as [a, b] pairs.
std::string smollm2_tokenizer_json(const std::string& gguf_path) {
  GgufFile g = GgufFile::open(gguf_path);
  auto tokens = g.get_string_array("tokenizer.ggml.tokens");
  auto types = g.get_int_array("tokenizer.ggml.token_type");
  auto merges = g.get_string_array("tokenizer.ggml.merges");
  nlohmann::json j;
  j["version"] = "1.0";
  j["normalizer"] = nullptr;
  j["added_tokens"] = nlohmann::json::array();
  for (size_t i = 0; i < tokens.size(); ++i)
    if (types[i] == 3) j["added_tokens"].push_back({{"id", i}, {"content", tokens[i]}, {"special", true}});
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Digits"}, {"individual_digits", true}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  j["post_processor"] = {{"type", "ByteLevel"}};
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  nlohmann::json pairs = nlohmann::json::array();
  for (auto& m : merges) {
    size_t sp = m.find(' ', 1);
    pairs.push_back({m.substr(0, sp), m.substr(sp + 1)});
  }
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", pairs}, {"ignore_merges", false}};
  return j.dump();
}

TEST(TokenizerHfJson, SmolLM2VocabularyAsTokenizerJson) {
  LOWBIT_REQUIRE_FILE(smollm2());
  std::string dir = temp_dir();
  write_file(dir + "/tokenizer.json", smollm2_tokenizer_json(smollm2()));
  auto tok = load_tokenizer(dir);  // a model directory
  EXPECT_EQ(tok->kind(), "hf-bpe");
  for (const auto& v : smollm2_vectors()) EXPECT_EQ(tok->encode(v.text, false), v.ids) << v.text;
  EXPECT_TRUE(tok->has_chat_template());
  std::mt19937 rng(11);
  for (int i = 0; i < 20; ++i) {
    std::string s = random_utf8(rng, size_t(1 + i * 17));
    ASSERT_EQ(tok->decode_all(tok->encode(s, false)), s);
  }
  std::remove((dir + "/tokenizer.json").c_str());
  std::remove(dir.c_str());
}

// A hand-made byte-level tokenizer.json: the 256 byte tokens, merges given as "a b" strings, a Split regex
// then Digits then ByteLevel, an added token, and a BOS from the post-processor template.
std::string tiny_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  // GPT-2's byte -> code point table, written independently of the library's.
  std::vector<int> cps(256);
  int next = 256;
  for (int b = 0; b < 256; ++b)
    cps[size_t(b)] = ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) ? b : next++;
  auto spell = [&](const std::string& raw) {
    std::string s;
    for (unsigned char c : raw) {
      int cp = cps[c];
      if (cp < 0x80) s += char(cp);
      else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    }
    return s;
  };
  for (int b = 0; b < 256; ++b) vocab[spell(std::string(1, char(b)))] = b;
  // Merges in rank order: "l o", "lo w", " low", "e r", " lower" (via " low"+"er"), "1 2" (never applies:
  // Digits isolates each digit).
  std::vector<std::pair<std::string, std::string>> merges = {{"l", "o"}, {"lo", "w"}, {" ", "low"}, {"e", "r"},
                                                             {" low", "er"}, {"1", "2"}};
  int id = 256;
  nlohmann::json merge_list = nlohmann::json::array();
  for (auto& [a, b] : merges) {
    vocab[spell(a + b)] = id++;
    merge_list.push_back(spell(a) + " " + spell(b));
  }
  nlohmann::json j;
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}};
  j["added_tokens"] = {{{"id", 300}, {"content", "<|bos|>"}, {"special", true}},
                       {{"id", 301}, {"content", "<|end|>"}, {"special", true}}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"String", "|"}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "Digits"}, {"individual_digits", true}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<|bos|>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  return j.dump();
}

TEST(TokenizerHfJson, TinyHandMadeFixture) {
  auto text = tiny_tokenizer_json();
  auto tok = load_tokenizer_from_bytes("hf-bpe", reinterpret_cast<const uint8_t*>(text.data()), text.size(), "tiny.json");
  EXPECT_EQ(tok->vocab_size(), 302);
  // "hf-json" is the kind name lowbit files use for an embedded tokenizer.json.
  EXPECT_EQ(load_tokenizer_from_bytes("hf-json", reinterpret_cast<const uint8_t*>(text.data()), text.size(), "tiny.json")
                ->encode(" lower", false),
            (std::vector<int>{260}));
  EXPECT_EQ(tok->bos_id(), 300);
  EXPECT_EQ(tok->eos_id(), -1);
  EXPECT_TRUE(tok->adds_bos());
  // " lower": ' ' l o w e r -> lo (256) -> low (257) -> " low" (258) -> er (259) -> " lower" (260).
  EXPECT_EQ(tok->encode(" lower", true), (std::vector<int>{300, 260}));
  // "lower" has no " lower" merge: low + er.
  EXPECT_EQ(tok->encode("lower", false), (std::vector<int>{257, 259}));
  // Digits are isolated before the GPT-2 regex, so "12" never merges; "|" is split out on its own.
  EXPECT_EQ(tok->encode("12|x", false), (std::vector<int>{'1', '2', '|', 'x'}));
  // Added tokens are recognised in text.
  EXPECT_EQ(tok->encode("<|end|> low", false), (std::vector<int>{301, 258}));
  EXPECT_EQ(tok->decode(0, 301), "<|end|>");
  EXPECT_EQ(tok->decode(0, 260), " lower");
  EXPECT_EQ(tok->decode(0, 0xC3), "\xC3");  // a byte token decodes to its raw byte
  std::mt19937 rng(3);
  for (int i = 0; i < 20; ++i) {
    std::string b = random_bytes(rng, size_t(1 + i * 7));
    ASSERT_EQ(tok->decode_all(tok->encode(b, false)), b);
  }
}

TEST(TokenizerHfJson, RejectsWhatItCannotDo) {
  auto load = [](const std::string& s) {
    return load_tokenizer_from_bytes("hf-bpe", reinterpret_cast<const uint8_t*>(s.data()), s.size(), "bad.json");
  };
  expect_error([&] { load("{not json"); }, {"bad.json", "not valid JSON"});
  expect_error([&] { load(R"({"model": {"type": "Unigram", "vocab": []}})"); }, {"bad.json", "Unigram"});
  expect_error([&] { load(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": null})"); },
               {"bad.json", "ByteLevel"});
  expect_error(
      [&] {
        load(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]},
                 "pre_tokenizer": {"type": "ByteLevel"}})");
      },
      {"bad.json", "merge 0"});
}

// ---- GGUF "llama" vocabulary (SentencePiece) -------------------------------------------------------------

// A GGUF holding only metadata: the Llama-2 vocabulary from tokenizer.bin with ▁ spaces, token types and
// scores, as llama.cpp's converter writes it. The encoder must agree with the llama2.c path.
std::vector<uint8_t> gguf_llama_vocab_from(const std::string& tokenizer_bin, bool add_space_prefix = true) {
  std::string d = read_text_file(tokenizer_bin);
  std::vector<std::string> toks;
  std::vector<float> scores;
  std::vector<int32_t> types;
  size_t o = 4;
  while (o < d.size()) {
    float s;
    int32_t len;
    std::memcpy(&s, d.data() + o, 4);
    std::memcpy(&len, d.data() + o + 4, 4);
    o += 8;
    std::string p = d.substr(o, size_t(len)), spelled;
    o += size_t(len);
    size_t id = toks.size();
    if (id == 1) p = "<s>";
    if (id == 2) p = "</s>";
    for (char c : p) spelled += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    toks.push_back(spelled);
    scores.push_back(s);
    types.push_back(id == 0 ? 2 : id <= 2 ? 3 : id < 259 ? 6 : 1);
  }
  std::vector<uint8_t> f = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
  auto put = [&](const void* p, size_t n) { f.insert(f.end(), (const uint8_t*)p, (const uint8_t*)p + n); };
  auto u32 = [&](uint32_t v) { put(&v, 4); };
  auto u64 = [&](uint64_t v) { put(&v, 8); };
  auto str = [&](const std::string& s) { u64(s.size()); put(s.data(), s.size()); };
  u64(0);                           // tensors
  u64(add_space_prefix ? 6 : 7);  // key/values
  str("tokenizer.ggml.model"), u32(8), str("llama");
  str("tokenizer.ggml.tokens"), u32(9), u32(8), u64(toks.size());
  for (auto& t : toks) str(t);
  str("tokenizer.ggml.scores"), u32(9), u32(6), u64(scores.size());
  for (float s : scores) put(&s, 4);
  str("tokenizer.ggml.token_type"), u32(9), u32(5), u64(types.size());
  for (int32_t t : types) put(&t, 4);
  str("tokenizer.ggml.bos_token_id"), u32(4), u32(1);
  str("tokenizer.ggml.eos_token_id"), u32(4), u32(2);
  if (!add_space_prefix) {
    str("tokenizer.ggml.add_space_prefix");
    u32(7);  // bool
    f.push_back(0);
  }
  return f;
}

TEST(TokenizerGguf, LlamaSentencePieceVocabulary) {
  LOWBIT_REQUIRE_FILE(llama2_tokenizer());
  auto bytes = gguf_llama_vocab_from(llama2_tokenizer());
  auto tok = load_tokenizer_from_bytes("gguf", bytes.data(), bytes.size(), "llama2-vocab.gguf");
  EXPECT_EQ(tok->kind(), "gguf-llama");
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_EQ(tok->encode("I believe the meaning of life is", true),
            (std::vector<int>{1, 306, 4658, 278, 6593, 310, 2834, 338}));
  EXPECT_EQ(tok->encode("Simply put, the theory of relativity states that ", true),
            (std::vector<int>{1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871}));
  // Control tokens written in text are recognised; the dummy prefix follows them.
  EXPECT_EQ(tok->encode("<s>I believe", false), (std::vector<int>{1, 306, 4658}));
  EXPECT_EQ(tok->decode_all(tok->encode("naïve café 日本語\n", true)), "naïve café 日本語\n");
  auto ref = load_tokenizer(llama2_tokenizer());
  std::mt19937 rng(21);
  for (int i = 0; i < 20; ++i) {
    std::string s = random_utf8(rng, size_t(1 + i * 5));
    if (s.find('<') != std::string::npos) continue;  // "<s>" would be special here and text in llama2.c
    ASSERT_EQ(tok->encode(s, true), ref->encode(s, true)) << s;
  }
  // add_space_prefix = false: no dummy space, so "I" is the bare piece, not " I" (306).
  auto no_prefix = gguf_llama_vocab_from(llama2_tokenizer(), false);
  auto bare = load_tokenizer_from_bytes("gguf", no_prefix.data(), no_prefix.size(), "no-prefix.gguf");
  auto ids = bare->encode("I believe", false);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_NE(ids[0], 306);
  EXPECT_EQ(ids[1], 4658);
  EXPECT_EQ(bare->decode_all(ids), "I believe");
}

// ---- errors ------------------------------------------------------------------------------------------

TEST(TokenizerErrors, MissingFile) {
  expect_error([] { load_tokenizer("/nonexistent/tokenizer.bin"); }, {"/nonexistent/tokenizer.bin"});
  expect_error([] { load_tokenizer("/nonexistent/dir/"); }, {"/nonexistent/dir/"});
}

TEST(TokenizerErrors, TruncatedTokenizerBin) {
  LOWBIT_REQUIRE_FILE(tok512());
  std::string d = read_text_file(tok512());
  std::string dir = temp_dir();
  std::string path = dir + "/tokenizer.bin";
  write_file(path, d.substr(0, d.size() - 3));  // cuts into the last token's bytes
  expect_error([&] { load_tokenizer(path); }, {path, "truncated at token 511"});
  write_file(path, d.substr(0, 4 + 5));  // cuts into the first record's header
  expect_error([&] { load_tokenizer(path); }, {path, "truncated at token 0"});
  write_file(path, d.substr(0, 2));
  expect_error([&] { load_tokenizer(path); }, {path, "too small"});
  std::remove(path.c_str());
  std::remove(dir.c_str());
}

TEST(TokenizerErrors, MalformedTiktokenLine) {
  std::string dir = temp_dir();
  std::string path = dir + "/tokenizer.model";
  write_file(path, "IQ== 0\nIg== 1\nnot-base64! 2\nJA== 3\n");
  expect_error([&] { load_tokenizer(path); }, {path + ":3", "malformed tiktoken line", "not-base64!"});
  write_file(path, "IQ== 0\nIg==\n");
  expect_error([&] { load_tokenizer(path); }, {path + ":2"});
  write_file(path, "IQ== 0\nIg== x1\n");
  expect_error([&] { load_tokenizer(path); }, {path + ":2"});
  write_file(path, "IQ== 0\nIg== 0\n");
  expect_error([&] { load_tokenizer(path); }, {path, "rank 0 appears twice"});
  write_file(path, "IQ== 0\nIg== 999999999\n");
  expect_error([&] { load_tokenizer(path); }, {path, "ranks must be 0..N-1"});
  std::remove(path.c_str());
  std::remove(dir.c_str());
}

// Corrupted tokenizer files load or fail with Error; nothing else escapes (no crash, no other exception).
TEST(TokenizerErrors, CorruptedFilesFailCleanly) {
  LOWBIT_REQUIRE_FILE(tok512());
  std::mt19937 rng(17);
  std::string tiny = tiny_tokenizer_json();
  std::vector<std::pair<std::string, std::string>> originals = {{"llama2c", read_text_file(tok512())},
                                                                {"hf-bpe", tiny},
                                                                {"tiktoken", "IQ== 0\nIg== 1\nIw== 2\nJA== 3\n"}};
  int loaded = 0, rejected = 0;
  for (const auto& [kind, original] : originals) {
    for (int trial = 0; trial < 200; ++trial) {
      std::string bytes = original;
      if (trial % 2 == 0) {
        bytes.resize(std::uniform_int_distribution<size_t>(0, bytes.size())(rng));
      } else {
        for (int k = 0; k < 4; ++k)
          bytes[std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng)] =
              char(std::uniform_int_distribution<int>(0, 255)(rng));
      }
      try {
        auto tok = load_tokenizer_from_bytes(kind, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "corrupt");
        tok->decode_all(tok->encode("Once upon a time 123", true));
        ++loaded;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded, 0);
}

TEST(TokenizerErrors, GgufWithoutVocabulary) {
  std::vector<uint8_t> f = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
  f.resize(f.size() + 16, 0);  // no tensors, no key/values
  expect_error([&] { load_tokenizer_from_bytes("gguf", f.data(), f.size(), "empty.gguf"); },
               {"empty.gguf", "tokenizer.ggml.model"});
  expect_error([&] { load_tokenizer_from_bytes("sentencepiece", f.data(), f.size(), "x"); }, {"unknown tokenizer kind"});
}

// ---- finding tokenizers ---------------------------------------------------------------------------------

// A minimal safetensors file: U8 tensor "tokenizer.bytes" and the lowbit.tokenizer metadata key.
std::string safetensors_with_tokenizer(const std::string& kind, const std::string& bytes) {
  nlohmann::json h;
  h["__metadata__"] = {{"lowbit.tokenizer", kind}};
  h["tokenizer.bytes"] = {{"dtype", "U8"}, {"shape", {bytes.size()}}, {"data_offsets", {0, bytes.size()}}};
  std::string hs = h.dump();
  uint64_t n = hs.size();
  std::string f(reinterpret_cast<const char*>(&n), 8);
  return f + hs + bytes;
}

TEST(TokenizerFind, NextToModelsAndEmbedded) {
  LOWBIT_REQUIRE_FILE(test::stories260k());
  LOWBIT_REQUIRE_FILE(tok512());
  EXPECT_EQ(find_tokenizer_for(test::stories260k(), 512), tok512());
  // A llama2.c checkpoint given as the tokenizer finds tok512.bin beside it.
  EXPECT_EQ(load_tokenizer(test::stories260k())->vocab_size(), 512);
  std::string dir = temp_dir();
  EXPECT_EQ(find_tokenizer_for(dir, 0), "");
  write_file(dir + "/tokenizer.model", "IQ== 0\n");
  EXPECT_EQ(find_tokenizer_for(dir, 0), dir + "/tokenizer.model");
  write_file(dir + "/tokenizer.json", "{}");
  EXPECT_EQ(find_tokenizer_for(dir, 0), dir + "/tokenizer.json");
  // A lowbit .safetensors file carrying its tokenizer is its own tokenizer file.
  std::string st = dir + "/model.safetensors";
  write_file(st, safetensors_with_tokenizer("llama2c", read_text_file(tok512())));
  EXPECT_EQ(find_tokenizer_for(st, 512), st);
  auto tok = load_tokenizer(st);
  EXPECT_EQ(tok->kind(), "llama2c");
  EXPECT_EQ(tok->vocab_size(), 512);
  // Without the metadata it falls back to the files beside it.
  write_file(st, safetensors_with_tokenizer("", ""));
  nlohmann::json h = {{"x", {{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {0, 1}}}}};
  std::string hs = h.dump();
  uint64_t n = hs.size();
  write_file(st, std::string(reinterpret_cast<const char*>(&n), 8) + hs + "z");
  EXPECT_EQ(find_tokenizer_for(st, 0), dir + "/tokenizer.json");
  if (file_exists(smollm2())) {
    EXPECT_EQ(find_tokenizer_for(smollm2(), 0), smollm2());
  }
  for (const char* f : {"/tokenizer.model", "/tokenizer.json", "/model.safetensors"}) std::remove((dir + f).c_str());
  std::remove(dir.c_str());
}

// ---- CLI ---------------------------------------------------------------------------------------------

TEST(TokenizerCli, PrintsIdsOnOneLine) {
  LOWBIT_REQUIRE_FILE(llama2_tokenizer());
  auto r = test::run_cli("tokenize --tokenizer " + llama2_tokenizer() + " --text 'I believe the meaning of life is' --bos");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "1 306 4658 278 6593 310 2834 338\n");
  r = test::run_cli("tokenize --tokenizer " + llama2_tokenizer() + " --text 'I believe the meaning of life is'");
  EXPECT_EQ(r.out, "306 4658 278 6593 310 2834 338\n");
}

TEST(TokenizerCli, FileBenchAndErrors) {
  LOWBIT_REQUIRE_FILE(llama3_tokenizer());
  std::string dir = temp_dir();
  write_file(dir + "/in.txt", "This is a test sentence.");
  auto r = test::run_cli("tokenize --tokenizer " + llama3_tokenizer() + " --file " + dir + "/in.txt");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "2028 374 264 1296 11914 13\n");
  r = test::run_cli("tokenize --tokenizer " + llama3_tokenizer() + " --file " + dir + "/in.txt --bench");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("tokenize: 24 bytes -> 6 tokens, "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" MB/s"), std::string::npos) << r.err;
  r = test::run_cli("tokenize --tokenizer " + dir + "/missing.model --text x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("missing.model"), std::string::npos) << r.err;
  r = test::run_cli("tokenize --tokenizer " + llama3_tokenizer());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--text or --file"), std::string::npos) << r.err;
  std::remove((dir + "/in.txt").c_str());
  std::remove(dir.c_str());
}

}  // namespace
}  // namespace lowbit

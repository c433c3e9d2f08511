// Pre-tokenization for the byte-level BPE tokenizers: a pipeline of regex splits (PCRE2, UTF + UCP, JIT),
// and the splitter that cuts text on special tokens written in it.
#pragma once
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::tok {

// Llama-3 / tiktoken pat_str.
inline constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2 (also HF ByteLevel's use_regex pattern).
inline constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Qwen2 (a Llama-3 pattern with single digits).
inline constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// One compiled PCRE2 pattern. Thread-safe to share: match data is made per call.
class Regex {
 public:
  // `origin` names where the pattern came from, for errors.
  Regex(const std::string& pattern, const std::string& origin);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  const std::string& pattern() const { return pattern_; }

  struct Matcher;  // match data for one scan (one per split call, reused across pieces)
  Matcher* make_matcher() const;
  static void free_matcher(Matcher* m);

  // Splits valid UTF-8 `s` into matches and the gaps between them (HF "Isolated" behaviour), in order.
  template <typename Emit>
  void split(std::string_view s, Matcher& m, Emit&& emit) const;

 private:
  // Finds the next match in s at or after `from`; false when none. [*b, *e) is the match.
  bool next_match(Matcher& m, std::string_view s, size_t from, size_t* b, size_t* e) const;
  std::string pattern_, origin_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

class MatcherSet;

// A sequence of regex splits; each split refines the pieces of the one before (HF pre-tokenizer Sequence,
// llama.cpp's list of regex_exprs).
class PreTokenizer {
 public:
  void add_split(const std::string& pattern, const std::string& origin) {
    steps_.push_back(std::make_shared<Regex>(pattern, origin));
  }
  bool empty() const { return steps_.empty(); }
  std::vector<std::string> patterns() const;

  // Calls emit(piece) for every pre-token of `text`, in order. Invalid UTF-8 bytes become pieces of one
  // byte each (the regexes only see valid UTF-8 runs), so any byte string is covered exactly once.
  template <typename Emit>
  void split(std::string_view text, Emit&& emit) const;

 private:
  template <typename Emit>
  void run(size_t step, std::string_view s, MatcherSet& matchers, Emit& emit) const;
  std::vector<std::shared_ptr<Regex>> steps_;
};

// Length of the valid UTF-8 prefix of s (fast path for ASCII).
size_t valid_utf8_prefix(std::string_view s);
// Byte length of the valid UTF-8 sequence at the start of s, 0 when the lead byte starts none.
size_t utf8_seq_len(std::string_view s);

// Cuts text on special tokens (longest match at each position wins).
class SpecialSplitter {
 public:
  void add(const std::string& text, int id);
  bool empty() const { return tokens_.empty(); }
  // -1 when `text` is not a special token.
  int find(std::string_view text) const;
  // Calls on_text(segment) for each run of ordinary text and on_special(id) for each special, in order.
  template <typename OnText, typename OnSpecial>
  void split(std::string_view text, OnText&& on_text, OnSpecial&& on_special) const;

 private:
  struct Entry {
    std::string text;
    int id;
  };
  // Longest special at text[pos]; sets *len. -1 when none.
  int match_at(std::string_view text, size_t pos, size_t* len) const;
  std::vector<Entry> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indexes into tokens_, longest first
  int single_first_byte_ = -1;  // the one first byte all specials share (-2: several), to scan with memchr
};

// ---- templates ------------------------------------------------------------------------------------

// Owns one Matcher per pipeline step for the length of one split() call.
class MatcherSet {
 public:
  explicit MatcherSet(const std::vector<std::shared_ptr<Regex>>& steps) {
    for (const auto& st : steps) m_.push_back(st->make_matcher());
  }
  ~MatcherSet() {
    for (auto* m : m_) Regex::free_matcher(m);
  }
  MatcherSet(const MatcherSet&) = delete;
  MatcherSet& operator=(const MatcherSet&) = delete;
  Regex::Matcher& operator[](size_t i) { return *m_[i]; }

 private:
  std::vector<Regex::Matcher*> m_;
};

template <typename Emit>
void PreTokenizer::split(std::string_view text, Emit&& emit) const {
  // Match data is made once per call and step, not per piece: it is a heap allocation.
  MatcherSet matchers(steps_);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t n = valid_utf8_prefix(text.substr(pos));
    if (n > 0) {
      run(0, text.substr(pos, n), matchers, emit);
      pos += n;
    } else {
      emit(text.substr(pos, 1));  // an invalid byte: its own piece
      ++pos;
    }
  }
}

template <typename Emit>
void PreTokenizer::run(size_t step, std::string_view s, MatcherSet& matchers, Emit& emit) const {
  if (s.empty()) return;
  if (step == steps_.size()) {
    emit(s);
    return;
  }
  steps_[step]->split(s, matchers[step], [&](std::string_view piece) { run(step + 1, piece, matchers, emit); });
}

template <typename Emit>
void Regex::split(std::string_view s, Matcher& m, Emit&& emit) const {
  size_t pos = 0, b = 0, e = 0;
  while (pos < s.size() && next_match(m, s, pos, &b, &e)) {
    if (b > pos) emit(s.substr(pos, b - pos));
    if (e == b) {
      // An empty match cuts nothing; step past one character so the scan moves on.
      size_t step = utf8_seq_len(s.substr(b));
      e = b + (step ? step : 1);
    }
    emit(s.substr(b, e - b));
    pos = e;
  }
  if (pos < s.size()) emit(s.substr(pos));
}

template <typename OnText, typename OnSpecial>
void SpecialSplitter::split(std::string_view text, OnText&& on_text, OnSpecial&& on_special) const {
  if (tokens_.empty()) {
    if (!text.empty()) on_text(text);
    return;
  }
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    if (single_first_byte_ >= 0) {
      const void* hit = std::memchr(text.data() + pos, single_first_byte_, text.size() - pos);
      if (!hit) break;
      pos = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
    } else if (by_first_byte_[static_cast<uint8_t>(text[pos])].empty()) {
      ++pos;
      continue;
    }
    size_t len = 0;
    int id = match_at(text, pos, &len);
    if (id < 0) {
      ++pos;
      continue;
    }
    if (pos > start) on_text(text.substr(start, pos - start));
    on_special(id);
    pos += len;
    start = pos;
  }
  if (start < text.size()) on_text(text.substr(start));
}

}  // namespace lowbit::tok

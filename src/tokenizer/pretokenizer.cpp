#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include "util/error.h"

namespace lowbit::tok {

struct Regex::Matcher {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;  // only once a match needed a larger JIT stack
  pcre2_jit_stack* jit_stack = nullptr;
};

namespace {

// Unicode White_Space, the \s of the regex engines tokenizers were made with (Rust regex for tiktoken,
// Oniguruma for HF). PCRE2's UCP \s also matches U+180E (MONGOLIAN VOWEL SEPARATOR, a format character
// since Unicode 6.3), which would cut pre-tokens differently.
constexpr const char* kWhiteSpaceItems = R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rewrites \s and \S (outside \Q..\E) to the explicit White_Space set; a \S inside a character class
// cannot be spelled as a list and is left to PCRE2.
std::string with_unicode_white_space(const std::string& re) {
  std::string out;
  bool in_class = false, quoted = false;
  for (size_t i = 0; i < re.size(); ++i) {
    char c = re[i];
    if (quoted) {
      out += c;
      if (c == '\\' && i + 1 < re.size() && re[i + 1] == 'E') {
        out += re[++i];
        quoted = false;
      }
      continue;
    }
    if (c == '\\' && i + 1 < re.size()) {
      char n = re[++i];
      if (n == 'Q') {
        quoted = true;
        out += "\\Q";
      } else if (n == 's') {
        out += in_class ? std::string(kWhiteSpaceItems) : cat("[", kWhiteSpaceItems, "]");
      } else if (n == 'S' && !in_class) {
        out += cat("[^", kWhiteSpaceItems, "]");
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < re.size() && re[i + 1] == '^') out += re[++i];
      if (i + 1 < re.size() && re[i + 1] == ']') out += re[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& origin) : pattern_(pattern), origin_(origin) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  const std::string compiled = with_unicode_white_space(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    fail(origin, ": cannot compile pre-tokenizer regex at offset ", err_off, " (", reinterpret_cast<char*>(msg),
         "): ", pattern);
  }
  code_ = code;
  // JIT is an optimisation: when the platform lacks it, the interpreter gives the same matches.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Regex::Matcher* Regex::make_matcher() const {
  auto* m = new Matcher;
  m->data = pcre2_match_data_create_from_pattern(static_cast<pcre2_code*>(code_), nullptr);
  if (!m->data) {
    delete m;
    fail(origin_, ": out of memory for regex match data");
  }
  return m;
}

void Regex::free_matcher(Matcher* m) {
  if (!m) return;
  if (m->data) pcre2_match_data_free(m->data);
  if (m->context) pcre2_match_context_free(m->context);
  if (m->jit_stack) pcre2_jit_stack_free(m->jit_stack);
  delete m;
}

bool Regex::next_match(Matcher& m, std::string_view s, size_t from, size_t* b, size_t* e) const {
  auto* code = static_cast<pcre2_code*>(code_);
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  for (int attempt = 0; attempt < 2; ++attempt) {
    // The caller validated s as UTF-8 once; re-checking on every call would make a scan quadratic.
    int rc = jit_ ? pcre2_jit_match(code, subject, s.size(), from, PCRE2_NO_UTF_CHECK, m.data, m.context)
                  : pcre2_match(code, subject, s.size(), from, PCRE2_NO_UTF_CHECK, m.data, m.context);
    if (rc >= 0) {
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.data);
      *b = ov[0];
      *e = ov[1];
      return true;
    }
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if ((rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) &&
        attempt == 0 && !m.context) {
      // Long runs (megabytes of one character class) can outgrow the default 32 KiB JIT stack.
      m.context = pcre2_match_context_create(nullptr);
      m.jit_stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
      if (!m.context || !m.jit_stack) fail(origin_, ": out of memory for the regex JIT stack");
      pcre2_jit_stack_assign(m.context, nullptr, m.jit_stack);
      continue;
    }
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof(msg));
    fail(origin_, ": pre-tokenizer regex failed at byte ", from, " (", reinterpret_cast<char*>(msg), ")");
  }
  return false;
}

std::vector<std::string> PreTokenizer::patterns() const {
  std::vector<std::string> r;
  for (const auto& s : steps_) r.push_back(s->pattern());
  return r;
}

size_t utf8_seq_len(std::string_view s) {
  if (s.empty()) return 0;
  auto c0 = static_cast<uint8_t>(s[0]);
  if (c0 < 0x80) return 1;
  size_t n;
  uint32_t min_cp;
  uint32_t cp;
  if ((c0 & 0xE0) == 0xC0) {
    n = 2, min_cp = 0x80, cp = c0 & 0x1F;
  } else if ((c0 & 0xF0) == 0xE0) {
    n = 3, min_cp = 0x800, cp = c0 & 0x0F;
  } else if ((c0 & 0xF8) == 0xF0) {
    n = 4, min_cp = 0x10000, cp = c0 & 0x07;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    auto c = static_cast<uint8_t>(s[i]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  // Overlong forms, surrogates and code points past U+10FFFF are not valid UTF-8 (PCRE2 would reject them).
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

size_t valid_utf8_prefix(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // Eight ASCII bytes at a time: no byte has its top bit set.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = utf8_seq_len(s.substr(i));
    if (len == 0) break;
    i += len;
  }
  return i;
}

void SpecialSplitter::add(const std::string& text, int id) {
  LB_CHECK(!text.empty(), "special token ", id, " has empty text");
  for (const Entry& e : tokens_)
    if (e.text == text) return;  // the first id given for a text wins
  tokens_.push_back({text, id});
  auto first = static_cast<uint8_t>(text[0]);
  auto& bucket = by_first_byte_[first];
  bucket.push_back(static_cast<uint32_t>(tokens_.size() - 1));
  std::stable_sort(bucket.begin(), bucket.end(),
                   [&](uint32_t a, uint32_t b) { return tokens_[a].text.size() > tokens_[b].text.size(); });
  if (single_first_byte_ == -1 && tokens_.size() == 1) single_first_byte_ = first;
  else if (single_first_byte_ >= 0 && single_first_byte_ != first) single_first_byte_ = -2;
}

int SpecialSplitter::find(std::string_view text) const {
  if (text.empty()) return -1;
  for (uint32_t i : by_first_byte_[static_cast<uint8_t>(text[0])])
    if (tokens_[i].text == text) return tokens_[i].id;
  return -1;
}

int SpecialSplitter::match_at(std::string_view text, size_t pos, size_t* len) const {
  std::string_view rest = text.substr(pos);
  for (uint32_t i : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
    const std::string& t = tokens_[i].text;
    if (rest.size() >= t.size() && std::memcmp(rest.data(), t.data(), t.size()) == 0) {
      *len = t.size();
      return tokens_[i].id;
    }
  }
  return -1;
}

}  // namespace lowbit::tok

// SentencePiece-style BPE by scores, as llama2.c's run.c encodes: a dummy-prefix space, one token per
// UTF-8 code point (bytes fall back to <0xXX> tokens), then repeatedly merge the adjacent pair whose
// concatenation is the best-scoring vocabulary entry (leftmost on ties). A heap of candidate pairs over a
// linked list of symbols gives the same merges as run.c's rescan-everything loop in O(n log n).
#include <algorithm>

#include "tokenizer/internal.h"
#include "tokenizer/piece_cache.h"
#include "util/error.h"

namespace lowbit::tok {
namespace {

// run.c only merges pairs scoring above this (its initial best_score).
constexpr float kMinMergeScore = -1e10f;

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(SentencePieceVocab v) : v_(std::move(v)) {
    const int n = static_cast<int>(v_.pieces.size());
    LB_CHECK(v_.scores.size() == v_.pieces.size(), v_.origin, ": ", v_.pieces.size(), " pieces but ",
             v_.scores.size(), " scores");
    ids_.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      ids_.insert(v_.pieces[static_cast<size_t>(i)], i);
      max_piece_len_ = std::max(max_piece_len_, v_.pieces[static_cast<size_t>(i)].size());
    }
    if (v_.decode_empty.size() != v_.pieces.size()) v_.decode_empty.resize(v_.pieces.size(), 0);
    for (int b = 0; b < 256; ++b) {
      int id = v_.byte_ids[static_cast<size_t>(b)];
      if (id >= 0 && id < n) byte_value_.emplace_back(id, static_cast<uint8_t>(b));
    }
    std::sort(byte_value_.begin(), byte_value_.end());
    dummy_prefix_id_ = ids_.find(" ");
    split_words_ = std::none_of(v_.pieces.begin(), v_.pieces.end(), [](const std::string& p) {
      for (size_t k = 1; k < p.size(); ++k)
        if (p[k] == ' ' && p[k - 1] != ' ') return true;
      return false;
    });
    for (const auto& [text, id] : v_.specials) specials_.add(text, id);
    init_specials(v_.bos, v_.eos, v_.add_bos, v_.stops);
  }

  std::string decode(int prev, int id) const override {
    LB_CHECK(id >= 0 && id < vocab_size(), v_.origin, ": token id ", id, " out of range [0, ", vocab_size(), ")");
    if (v_.decode_empty[static_cast<size_t>(id)]) return {};
    auto it = std::lower_bound(byte_value_.begin(), byte_value_.end(), std::make_pair(id, uint8_t{0}));
    if (it != byte_value_.end() && it->first == id) return std::string(1, static_cast<char>(it->second));
    std::string_view piece = v_.pieces[static_cast<size_t>(id)];
    if (prev == bos_ && bos_ >= 0 && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
    return std::string(piece);
  }
  int vocab_size() const override { return static_cast<int>(v_.pieces.size()); }
  std::string kind() const override { return v_.kind; }

 protected:
  int special_token_id(std::string_view text) const override { return specials_.find(text); }

  void encode_into(std::string_view text, bool specials, std::vector<int>& out) const override {
    if (!specials || specials_.empty()) {
      encode_text(text, v_.add_dummy_prefix, out);
      return;
    }
    // The dummy prefix goes in front of text at the start and after each special token (llama.cpp's SPM).
    bool after_special = true;
    specials_.split(
        text,
        [&](std::string_view seg) {
          encode_text(seg, after_special && v_.add_dummy_prefix, out);
          after_special = false;
        },
        [&](int id) {
          out.push_back(id);
          after_special = true;
        });
  }

 private:
  struct Symbol {
    int id;
    int prev, next;  // -1 at the ends
  };
  struct Candidate {
    float score;
    int left, right;
    int left_id, right_id, merged_id;
  };
  struct WorseCandidate {
    bool operator()(const Candidate& a, const Candidate& b) const {
      if (a.score != b.score) return a.score < b.score;
      return a.left > b.left;  // equal scores: the leftmost pair first, as run.c's strict '>' scan does
    }
  };

  int lookup_pair(int a, int b, std::string& buf) const {
    const std::string& pa = v_.pieces[static_cast<size_t>(a)];
    const std::string& pb = v_.pieces[static_cast<size_t>(b)];
    if (pa.size() + pb.size() > max_piece_len_) return -1;
    buf.assign(pa);
    buf.append(pb);
    return ids_.find(buf);
  }

  // Merges never cross a space that follows a non-space when no piece has a non-space followed by a space
  // (true of SentencePiece vocabularies trained with split_by_whitespace, e.g. Llama-2 and tok512; checked at
  // load). The text is then merged word by word, which gives run.c's result with far smaller heaps.
  void encode_text(std::string_view text, bool dummy_prefix, std::vector<int>& out) const {
    if (text.empty()) return;
    if (!split_words_) {
      encode_segment(text, dummy_prefix, out);
      return;
    }
    size_t start = 0;
    for (size_t p = 1; p < text.size(); ++p) {
      if (text[p] == ' ' && text[p - 1] != ' ') {
        encode_segment(text.substr(start, p - start), dummy_prefix, out);
        dummy_prefix = false;
        start = p;
      }
    }
    encode_segment(text.substr(start), dummy_prefix, out);
  }

  void encode_segment(std::string_view text, bool dummy_prefix, std::vector<int>& out) const {
    const bool cacheable = !dummy_prefix && text.size() <= PieceCache::kMaxPiece;
    uint64_t h = 0;
    if (cacheable) {
      h = hash_bytes(text.data(), text.size());
      if (PieceCache::lookup(cache_owner_, text, h, out)) return;
    }
    const size_t before = out.size();
    merge_segment(text, dummy_prefix, out);
    if (cacheable) PieceCache::store(cache_owner_, text, h, out.data() + before, out.size() - before);
  }

  void merge_segment(std::string_view text, bool dummy_prefix, std::vector<int>& out) const {
    thread_local std::vector<Symbol> syms;
    thread_local std::vector<Candidate> heap;
    syms.clear();
    heap.clear();
    auto push = [&](int id) { syms.push_back({id, static_cast<int>(syms.size()) - 1, -1}); };
    if (dummy_prefix) {
      if (dummy_prefix_id_ >= 0) push(dummy_prefix_id_);
      else push_bytes(" ", push);
    }
    // One chunk per code point: a lead byte and up to 3 continuation bytes (run.c's rule, which also
    // decides how malformed UTF-8 is cut).
    size_t i = 0;
    while (i < text.size()) {
      size_t len = 1;
      while (i + len < text.size() && (static_cast<uint8_t>(text[i + len]) & 0xC0) == 0x80 && len < 4) ++len;
      std::string_view chunk = text.substr(i, len);
      int id = ids_.find(chunk);
      if (id >= 0) push(id);
      else push_bytes(chunk, push);
      i += len;
    }
    for (size_t k = 0; k + 1 < syms.size(); ++k) syms[k].next = static_cast<int>(k + 1);

    std::string buf;
    auto consider = [&](int left) {
      if (left < 0) return;
      int right = syms[static_cast<size_t>(left)].next;
      if (right < 0) return;
      int a = syms[static_cast<size_t>(left)].id, b = syms[static_cast<size_t>(right)].id;
      int merged = lookup_pair(a, b, buf);
      if (merged < 0) return;
      float score = v_.scores[static_cast<size_t>(merged)];
      if (!(score > kMinMergeScore)) return;
      heap.push_back({score, left, right, a, b, merged});
      std::push_heap(heap.begin(), heap.end(), WorseCandidate{});
    };
    for (int k = 0; k + 1 < static_cast<int>(syms.size()); ++k) consider(k);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), WorseCandidate{});
      Candidate c = heap.back();
      heap.pop_back();
      Symbol& l = syms[static_cast<size_t>(c.left)];
      // Stale when either side has merged since: ids only change by merging (to longer pieces), and a
      // symbol merged into its left neighbour is unlinked.
      if (l.id != c.left_id || l.next != c.right) continue;
      Symbol& r = syms[static_cast<size_t>(c.right)];
      if (r.id != c.right_id) continue;
      l.id = c.merged_id;
      l.next = r.next;
      if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = c.left;
      r.id = -1;
      r.prev = r.next = -1;
      consider(l.prev);
      consider(c.left);
    }
    for (int k = syms.empty() ? -1 : 0; k >= 0; k = syms[static_cast<size_t>(k)].next)
      out.push_back(syms[static_cast<size_t>(k)].id);
  }

  template <typename Push>
  void push_bytes(std::string_view bytes, Push& push) const {
    for (char ch : bytes) {
      int id = v_.byte_ids[static_cast<uint8_t>(ch)];
      LB_CHECK(id >= 0, v_.origin, ": no token for byte 0x", std::hex, static_cast<int>(static_cast<uint8_t>(ch)),
               " (vocabulary has no <0x..> byte-fallback tokens)");
      push(id);
    }
  }

  SentencePieceVocab v_;
  StringIdMap ids_;
  size_t max_piece_len_ = 0;
  int dummy_prefix_id_ = -1;
  std::vector<std::pair<int, uint8_t>> byte_value_;  // (byte token id, its byte), sorted by id
  SpecialSplitter specials_;
  bool split_words_ = false;
  const uint64_t cache_owner_ = PieceCache::new_owner();
};

}  // namespace

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(SentencePieceVocab vocab) {
  return std::make_unique<SentencePieceTokenizer>(std::move(vocab));
}

}  // namespace lowbit::tok

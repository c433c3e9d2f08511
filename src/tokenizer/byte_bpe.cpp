// Byte-level BPE (tiktoken, HF tokenizer.json, GGUF "gpt2"): split special tokens out, pre-tokenize with
// the regex pipeline, then per pre-token: optionally the whole piece if it is a token (tiktoken does this
// first), else start from one token per byte and repeatedly merge the adjacent pair of lowest rank
// (leftmost on ties). Rank: the concatenation's id (tiktoken, ranks are ids) or the merge list position.
#include <algorithm>
#include <queue>

#include "tokenizer/internal.h"
#include "tokenizer/piece_cache.h"
#include "util/error.h"

namespace lowbit::tok {
namespace {

constexpr int kNoRank = 0x7FFFFFFF;

class ByteBpeTokenizer final : public Tokenizer {
 public:
  explicit ByteBpeTokenizer(ByteBpeVocab v) : v_(std::move(v)) {
    const size_t n = v_.tokens.size();
    if (v_.is_special.size() != n) v_.is_special.resize(n, 0);
    ids_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (v_.is_special[i] || v_.tokens[i].empty()) continue;
      ids_.insert(v_.tokens[i], static_cast<int>(i));
      max_token_len_ = std::max(max_token_len_, v_.tokens[i].size());
    }
    for (int b = 0; b < 256; ++b) {
      char c = static_cast<char>(b);
      byte_ids_[static_cast<size_t>(b)] = ids_.find(std::string_view(&c, 1));
    }
    if (!v_.merge_by_rank) {
      merges_.reserve(v_.merges.size());
      std::string buf;
      for (size_t r = 0; r < v_.merges.size(); ++r) {
        auto [a, b] = v_.merges[r];
        LB_CHECK(a >= 0 && b >= 0 && static_cast<size_t>(a) < n && static_cast<size_t>(b) < n, v_.origin,
                 ": merge ", r, " refers to token ids out of range");
        buf = v_.tokens[static_cast<size_t>(a)] + v_.tokens[static_cast<size_t>(b)];
        int merged = ids_.find(buf);
        LB_CHECK(merged >= 0, v_.origin, ": merge ", r, " makes a token that is not in the vocabulary");
        merges_.insert(a, b, static_cast<int>(r), merged);
      }
    }
    for (const auto& [text, id] : v_.specials) specials_.add(text, id);
    for (size_t i = 0; i < v_.split_patterns.size(); ++i)
      pre_.add_split(v_.split_patterns[i], cat(v_.origin, " (pre-tokenizer ", i, ")"));
    init_specials(v_.bos, v_.eos, v_.add_bos, v_.stops);
  }

  std::string decode(int prev, int id) const override {
    LB_CHECK(id >= 0 && id < vocab_size(), v_.origin, ": token id ", id, " out of range [0, ", vocab_size(), ")");
    return v_.tokens[static_cast<size_t>(id)];
  }
  int vocab_size() const override { return static_cast<int>(v_.tokens.size()); }
  std::string kind() const override { return v_.kind; }

 protected:
  int special_token_id(std::string_view text) const override { return specials_.find(text); }

  void encode_into(std::string_view text, bool specials, std::vector<int>& out) const override {
    auto on_text = [&](std::string_view seg) {
      if (pre_.empty()) {
        encode_piece(seg, out);
        return;
      }
      pre_.split(seg, [&](std::string_view piece) { encode_piece(piece, out); });
    };
    if (specials) specials_.split(text, on_text, [&](int id) { out.push_back(id); });
    else if (!text.empty()) on_text(text);
  }

 private:
  struct Symbol {
    int start, len;  // bytes of the piece this symbol covers
    int id;
  };

  // -1 for a byte the vocabulary has no token for: byte-level vocabularies may leave out bytes that are
  // rare or never occur in UTF-8 (SmolLM2 lacks 0x04, 0xF5..0xFF, ...). Such a byte takes part in no merge
  // and produces no token, as llama.cpp's BPE and HF tokenizers (without unk_token) do.
  int byte_id(uint8_t b) const { return byte_ids_[b]; }

  // Rank of merging symbols a and b (kNoRank when they do not merge); sets *merged.
  int pair_rank(std::string_view piece, const Symbol& a, const Symbol& b, int* merged) const {
    if (a.id < 0 || b.id < 0) return kNoRank;
    if (v_.merge_by_rank) {
      if (static_cast<size_t>(a.len + b.len) > max_token_len_) return kNoRank;
      int id = ids_.find(piece.substr(static_cast<size_t>(a.start), static_cast<size_t>(a.len + b.len)));
      *merged = id;
      return id >= 0 ? id : kNoRank;
    }
    PairMergeMap::Merge m = merges_.find(a.id, b.id);
    *merged = m.id;
    return m.rank >= 0 ? m.rank : kNoRank;
  }

  void encode_piece(std::string_view piece, std::vector<int>& out) const {
    if (piece.empty()) return;
    if (piece.size() == 1) {
      int id = byte_id(static_cast<uint8_t>(piece[0]));
      if (id >= 0) out.push_back(id);
      return;
    }
    if (v_.whole_piece_lookup && piece.size() <= max_token_len_) {
      int id = ids_.find(piece);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    if (piece.size() > PieceCache::kMaxPiece) {
      if (piece.size() <= kSmallPiece) merge_small(piece, out);
      else merge_large(piece, out);
      return;
    }
    const uint64_t h = hash_bytes(piece.data(), piece.size());
    if (PieceCache::lookup(cache_owner_, piece, h, out)) return;
    const size_t before = out.size();
    merge_small(piece, out);
    PieceCache::store(cache_owner_, piece, h, out.data() + before, out.size() - before);
  }

  // Few symbols: rescanning an array of cached pair ranks beats a heap.
  static constexpr size_t kSmallPiece = 48;
  void merge_small(std::string_view piece, std::vector<int>& out) const {
    Symbol syms[kSmallPiece];
    int rank[kSmallPiece];    // rank of merging syms[i] with syms[i + 1]
    int merged[kSmallPiece];  // the id that merge gives
    int n = static_cast<int>(piece.size());
    for (int i = 0; i < n; ++i) syms[i] = {i, 1, byte_id(static_cast<uint8_t>(piece[static_cast<size_t>(i)]))};
    for (int i = 0; i + 1 < n; ++i) rank[i] = pair_rank(piece, syms[i], syms[i + 1], &merged[i]);
    while (n > 1) {
      int best = -1, best_rank = kNoRank;
      for (int i = 0; i + 1 < n; ++i)
        if (rank[i] < best_rank) best_rank = rank[i], best = i;  // strict: leftmost among equal ranks
      if (best < 0) break;
      syms[best].len += syms[best + 1].len;
      syms[best].id = merged[best];
      for (int i = best + 1; i + 1 < n; ++i) {
        syms[i] = syms[i + 1];
        rank[i] = rank[i + 1];
        merged[i] = merged[i + 1];
      }
      --n;
      if (best > 0) rank[best - 1] = pair_rank(piece, syms[best - 1], syms[best], &merged[best - 1]);
      if (best + 1 < n) rank[best] = pair_rank(piece, syms[best], syms[best + 1], &merged[best]);
    }
    for (int i = 0; i < n; ++i)
      if (syms[i].id >= 0) out.push_back(syms[i].id);
  }

  // Long pieces (e.g. a megabyte of one punctuation run): heap of candidate pairs over a linked list.
  void merge_large(std::string_view piece, std::vector<int>& out) const {
    struct Node {
      Symbol s;
      int prev, next;
    };
    struct Candidate {
      int rank, left, right, left_id, right_id, merged;
    };
    struct Worse {
      bool operator()(const Candidate& a, const Candidate& b) const {
        return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
      }
    };
    const int n = static_cast<int>(piece.size());
    std::vector<Node> nodes(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
      nodes[static_cast<size_t>(i)] = {{i, 1, byte_id(static_cast<uint8_t>(piece[static_cast<size_t>(i)]))}, i - 1,
                                       i + 1 < n ? i + 1 : -1};
    std::priority_queue<Candidate, std::vector<Candidate>, Worse> heap;
    auto consider = [&](int left) {
      if (left < 0) return;
      int right = nodes[static_cast<size_t>(left)].next;
      if (right < 0) return;
      int merged = -1;
      int r = pair_rank(piece, nodes[static_cast<size_t>(left)].s, nodes[static_cast<size_t>(right)].s, &merged);
      if (r == kNoRank) return;
      heap.push({r, left, right, nodes[static_cast<size_t>(left)].s.id, nodes[static_cast<size_t>(right)].s.id, merged});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);
    while (!heap.empty()) {
      Candidate c = heap.top();
      heap.pop();
      Node& l = nodes[static_cast<size_t>(c.left)];
      if (l.s.id != c.left_id || l.next != c.right) continue;  // stale: a side merged since
      Node& r = nodes[static_cast<size_t>(c.right)];
      if (r.s.id != c.right_id) continue;
      l.s.len += r.s.len;
      l.s.id = c.merged;
      l.next = r.next;
      if (r.next >= 0) nodes[static_cast<size_t>(r.next)].prev = c.left;
      r.s.id = -1;
      r.prev = r.next = -1;
      consider(l.prev);
      consider(c.left);
    }
    for (int i = 0; i >= 0; i = nodes[static_cast<size_t>(i)].next)
      if (nodes[static_cast<size_t>(i)].s.id >= 0) out.push_back(nodes[static_cast<size_t>(i)].s.id);
  }

  ByteBpeVocab v_;
  StringIdMap ids_;  // raw bytes -> id (ordinary tokens only)
  PairMergeMap merges_;
  std::array<int, 256> byte_ids_{};
  size_t max_token_len_ = 0;
  PreTokenizer pre_;
  SpecialSplitter specials_;
  const uint64_t cache_owner_ = PieceCache::new_owner();
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(ByteBpeVocab vocab) {
  return std::make_unique<ByteBpeTokenizer>(std::move(vocab));
}

}  // namespace lowbit::tok

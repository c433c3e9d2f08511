// A small per-thread cache of pre-token -> ids. Natural text repeats its words (Zipf), so most pieces that
// need BPE merging were merged before; a direct-mapped table makes the repeat a hash probe.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace lowbit::tok {

class PieceCache {
 public:
  static constexpr size_t kMaxPiece = 32, kMaxIds = 15, kEntries = 4096;

  // A fresh owner id per tokenizer instance (never reused, unlike addresses).
  static uint64_t new_owner() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1);
  }

  // Appends the cached ids of `piece` to out and returns true on a hit.
  static bool lookup(uint64_t owner, std::string_view piece, uint64_t hash, std::vector<int>& out) {
    Table& t = table(owner);
    const Entry& e = t.entries[hash & (kEntries - 1)];
    if (e.hash != hash || e.len != piece.size() || std::memcmp(e.piece, piece.data(), piece.size()) != 0) return false;
    out.insert(out.end(), e.ids, e.ids + e.n_ids);
    return true;
  }

  static void store(uint64_t owner, std::string_view piece, uint64_t hash, const int* ids, size_t n) {
    if (piece.size() > kMaxPiece || n > kMaxIds) return;
    Entry& e = table(owner).entries[hash & (kEntries - 1)];
    e.hash = hash;
    e.len = static_cast<uint8_t>(piece.size());
    e.n_ids = static_cast<uint8_t>(n);
    std::memcpy(e.piece, piece.data(), piece.size());
    std::memcpy(e.ids, ids, n * sizeof(int));
  }

 private:
  struct Entry {
    uint64_t hash = 0;
    uint8_t len = 0xFF, n_ids = 0;  // len 0xFF: empty (no piece is that long)
    char piece[kMaxPiece];
    int ids[kMaxIds];
  };
  struct Table {
    uint64_t owner = 0;
    std::vector<Entry> entries;
  };
  static Table& table(uint64_t owner) {
    thread_local Table t;
    if (t.owner != owner) {
      // Another tokenizer used this thread's table last: start empty rather than mix vocabularies.
      t.entries.assign(kEntries, Entry{});
      t.owner = owner;
    }
    return t;
  }
};

}  // namespace lowbit::tok

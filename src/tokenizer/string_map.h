// Open-addressing hash maps for the tokenizers' hot lookups: byte string -> id, and (id, id) -> merge.
// std::unordered_map<std::string, int> costs a heap node per entry and a std::string per lookup; these keep
// keys in one arena and look up string_views without allocating.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::tok {

// 64x64->128 multiply folded to 64 bits: a cheap, well-mixing step for short keys.
inline uint64_t mix64(uint64_t a, uint64_t b) {
  __uint128_t m = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = mix64(n ^ 0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix64(h ^ w, 0x94D049BB133111EBull);
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = mix64(h ^ w, 0xD6E8FEB86659FD93ull);
  }
  return h;
}

// byte string -> int id. Insert keeps the first id given for a key. Keys of up to 16 bytes (most tokens) are
// stored in the slot itself, so a lookup touches one cache line instead of slot + arena.
class StringIdMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;  // load factor <= 1/2 keeps probe chains short
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old)
      if (s.id >= 0) place(s);
  }
  // Returns false when the key was already present (the map is unchanged then).
  bool insert(std::string_view key, int id) {
    if ((count_ + 1) * 2 > slots_.size()) reserve(count_ + 1 < 8 ? 8 : (count_ + 1) * 2);
    uint64_t h = hash_bytes(key.data(), key.size());
    if (find_hashed(key, h) >= 0) return false;
    Slot s;
    s.hash = h;
    s.len = static_cast<uint32_t>(key.size());
    s.id = id;
    if (key.size() <= kInline) {
      std::memcpy(s.key.bytes, key.data(), key.size());
    } else {
      s.key.offset = arena_.size();
      arena_.append(key);
    }
    place(s);
    ++count_;
    return true;
  }
  // -1 when absent.
  int find(std::string_view key) const {
    if (count_ == 0) return -1;
    return find_hashed(key, hash_bytes(key.data(), key.size()));
  }
  size_t size() const { return count_; }

 private:
  static constexpr size_t kInline = 16;
  struct Slot {
    uint64_t hash = 0;
    int32_t id = -1;  // -1: empty
    uint32_t len = 0;
    union {
      char bytes[kInline];
      uint64_t offset;  // into arena_, when len > kInline
    } key{};
  };
  void place(const Slot& s) {
    size_t i = s.hash & mask_;
    while (slots_[i].id >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
  int find_hashed(std::string_view key, uint64_t h) const {
    if (slots_.empty()) return -1;
    size_t i = h & mask_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.hash == h && s.len == key.size()) {
        const char* stored = s.len <= kInline ? s.key.bytes : arena_.data() + s.key.offset;
        if (std::memcmp(stored, key.data(), key.size()) == 0) return s.id;
      }
      i = (i + 1) & mask_;
    }
  }
  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0, count_ = 0;
};

// (left id, right id) -> (merge rank, merged id), for BPE vocabularies given as a merge list.
class PairMergeMap {
 public:
  struct Merge {
    int rank = -1;  // -1: no such merge
    int id = -1;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old)
      if (s.m.rank >= 0) place(s);
  }
  // Keeps the first (lowest-rank) merge given for a pair.
  void insert(int left, int right, int rank, int merged) {
    if ((count_ + 1) * 2 > slots_.size()) reserve(count_ + 1 < 8 ? 8 : (count_ + 1) * 2);
    uint64_t key = pack(left, right);
    if (find(left, right).rank >= 0) return;
    place(Slot{key, Merge{rank, merged}});
    ++count_;
  }
  Merge find(int left, int right) const {
    if (slots_.empty()) return {};
    uint64_t key = pack(left, right);
    size_t i = mix64(key, 0x9E3779B97F4A7C15ull) & mask_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.m.rank < 0) return {};
      if (s.key == key) return s.m;
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint64_t key = 0;
    Merge m;
  };
  static uint64_t pack(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
  void place(const Slot& s) {
    size_t i = mix64(s.key, 0x9E3779B97F4A7C15ull) & mask_;
    while (slots_[i].m.rank >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, count_ = 0;
};

}  // namespace lowbit::tok

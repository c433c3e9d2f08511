// Builds small GGUF files in memory for tests (fixtures are made by the tests, never committed).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace lowbit::test {

class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3, uint32_t alignment = 32) : version_(version), align_(alignment) {}

  void kv_u32(const std::string& k, uint32_t v) { key(k, 4); put(v); ++n_kv_; }
  void kv_i32(const std::string& k, int32_t v) { key(k, 5); put(v); ++n_kv_; }
  void kv_f32(const std::string& k, float v) { key(k, 6); put(v); ++n_kv_; }
  void kv_bool(const std::string& k, bool v) { key(k, 7); put(uint8_t(v)); ++n_kv_; }
  void kv_str(const std::string& k, const std::string& v) { key(k, 8); str(kv_, v); ++n_kv_; }
  void kv_u64(const std::string& k, uint64_t v) { key(k, 10); put(v); ++n_kv_; }
  void kv_i64(const std::string& k, int64_t v) { key(k, 11); put(v); ++n_kv_; }
  void kv_f64(const std::string& k, double v) { key(k, 12); put(v); ++n_kv_; }
  void kv_str_array(const std::string& k, const std::vector<std::string>& a) {
    key(k, 9); put(uint32_t(8)); put(uint64_t(a.size()));
    for (auto& s : a) str(kv_, s);
    ++n_kv_;
  }
  void kv_i32_array(const std::string& k, const std::vector<int32_t>& a) {
    key(k, 9); put(uint32_t(5)); put(uint64_t(a.size()));
    for (auto v : a) put(v);
    ++n_kv_;
  }
  void kv_f32_array(const std::string& k, const std::vector<float>& a) {
    key(k, 9); put(uint32_t(6)); put(uint64_t(a.size()));
    for (auto v : a) put(v);
    ++n_kv_;
  }
  // An array of arrays of strings.
  void kv_nested_str_array(const std::string& k, const std::vector<std::vector<std::string>>& a) {
    key(k, 9); put(uint32_t(9)); put(uint64_t(a.size()));
    for (auto& inner : a) {
      put(uint32_t(8)); put(uint64_t(inner.size()));
      for (auto& s : inner) str(kv_, s);
    }
    ++n_kv_;
  }
  // Raw bytes appended to the metadata section (for corrupt-input tests).
  void raw_kv(const std::vector<uint8_t>& bytes, int count) {
    kv_.insert(kv_.end(), bytes.begin(), bytes.end());
    n_kv_ += count;
  }

  // Adds a tensor with ggml dims (dims[0] innermost) and its raw bytes; the offset is the next aligned one
  // unless `offset` is given.
  void tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, const std::vector<uint8_t>& bytes,
              int64_t offset = -1) {
    uint64_t off = offset >= 0 ? uint64_t(offset) : (data_.size() + align_ - 1) / align_ * align_;
    str(ti_, name);
    append(ti_, uint32_t(dims.size()));
    for (auto d : dims) append(ti_, d);
    append(ti_, type);
    append(ti_, off);
    if (data_.size() < off + bytes.size()) data_.resize(off + bytes.size(), 0);
    std::memcpy(data_.data() + off, bytes.data(), bytes.size());
    ++n_tensors_;
  }

  std::vector<uint8_t> build(int64_t tensor_count_override = -1) const {
    std::vector<uint8_t> f = {'G', 'G', 'U', 'F'};
    append(f, version_);
    append(f, uint64_t(tensor_count_override >= 0 ? uint64_t(tensor_count_override) : n_tensors_));
    append(f, n_kv_);
    f.insert(f.end(), kv_.begin(), kv_.end());
    f.insert(f.end(), ti_.begin(), ti_.end());
    if (n_tensors_ > 0) {
      f.resize((f.size() + align_ - 1) / align_ * align_, 0);
      f.insert(f.end(), data_.begin(), data_.end());
    }
    return f;
  }

 private:
  template <typename T>
  static void append(std::vector<uint8_t>& b, T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
  }
  template <typename T>
  void put(T v) { append(kv_, v); }
  static void str(std::vector<uint8_t>& b, const std::string& s) {
    append(b, uint64_t(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  }
  void key(const std::string& k, uint32_t type) { str(kv_, k); put(type); }

  uint32_t version_, align_;
  uint64_t n_kv_ = 0, n_tensors_ = 0;
  std::vector<uint8_t> kv_, ti_, data_;
};

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace lowbit::test

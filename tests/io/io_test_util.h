// Helpers for the io tests: a scratch directory, writing fixture bytes, asserting on error messages.
#pragma once
#include "io/loader.h"
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "util/error.h"

namespace lowbit::test {

// Load options without the progress line (tests load many small models).
inline LoadOptions quiet() {
  LoadOptions o;
  o.progress = false;
  return o;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/lowbit_io_test_XXXXXX";
    const char* p = mkdtemp(tmpl);
    if (p) path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const void* data, size_t n) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  if (n) {
    ASSERT_EQ(std::fwrite(data, 1, n, f), n);
  }
  std::fclose(f);
}
inline void write_file(const std::string& path, const std::vector<uint8_t>& b) { write_file(path, b.data(), b.size()); }
inline void write_file(const std::string& path, const std::string& s) { write_file(path, s.data(), s.size()); }

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::vector<uint8_t> b;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return b;
  std::fseek(f, 0, SEEK_END);
  b.resize(size_t(std::ftell(f)));
  std::fseek(f, 0, SEEK_SET);
  if (!b.empty() && std::fread(b.data(), 1, b.size(), f) != b.size()) b.clear();
  std::fclose(f);
  return b;
}

// Runs fn, expects a lowbit::Error whose message contains every one of `parts`; returns the message.
inline std::string expect_error(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    std::string m = e.what();
    for (const auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
    return m;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected lowbit::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected an Error, none was thrown";
  return "";
}

}  // namespace lowbit::test

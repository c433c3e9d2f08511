// Errors are values with context: every failure names the file/tensor/format and what was expected.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lowbit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// cat("tensor ", name, ": expected ", n, " bytes") -> one string; any streamable argument.
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(cat(std::forward<Args>(args)...));
}

}  // namespace lowbit

// LB_CHECK(cond, "what was expected", values...): throws lowbit::Error with the message when cond is false.
#define LB_CHECK(cond, ...)                         \
  do {                                              \
    if (!(cond)) ::lowbit::fail(__VA_ARGS__);       \
  } while (0)

// A progress line on stderr for long work (quantize, eval, bench). Redraws in place on a terminal,
// prints a few plain lines otherwise (logs, CI).
#pragma once
#include <cstdint>
#include <string>

namespace lowbit {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  ~Progress();
  void update(int64_t done, const std::string& detail = "");
  void finish(const std::string& detail = "");

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_, finished_ = false, shown_ = false;
  double start_, last_draw_ = 0;
  int last_decile_ = -1;
};

}  // namespace lowbit

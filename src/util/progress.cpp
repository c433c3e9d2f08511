#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include "util/timer.h"

namespace lowbit {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total > 0 ? total : 1), enabled_(enabled),
      tty_(isatty(STDERR_FILENO)), start_(now_seconds()) {}

Progress::~Progress() {
  if (!finished_) finish();
}

void Progress::update(int64_t done, const std::string& detail) {
  if (!enabled_) return;
  double t = now_seconds();
  double frac = double(done) / double(total_);
  if (frac > 1) frac = 1;
  double el = t - start_;
  if (el < 0.5 && !shown_) return;  // short work stays quiet
  shown_ = true;
  double eta = frac > 0 ? el / frac - el : 0;
  if (tty_) {
    if (t - last_draw_ < 0.1 && done < total_) return;
    last_draw_ = t;
    const int width = 30;
    int fill = int(frac * width);
    std::fprintf(stderr, "\r%s [", label_.c_str());
    for (int i = 0; i < width; ++i) std::fputc(i < fill ? '#' : '.', stderr);
    std::fprintf(stderr, "] %3d%% %lld/%lld %.1fs eta %.1fs %s\x1b[K", int(frac * 100), (long long)done,
                 (long long)total_, el, eta, detail.c_str());
    std::fflush(stderr);
  } else {
    int decile = int(frac * 10);
    if (decile == last_decile_) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s: %3d%% (%lld/%lld) %.1fs %s\n", label_.c_str(), decile * 10, (long long)done,
                 (long long)total_, el, detail.c_str());
  }
}

void Progress::finish(const std::string& detail) {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  double el = now_seconds() - start_;
  if (!shown_ && el < 0.5) return;
  if (tty_) std::fprintf(stderr, "\r%s done in %.1fs %s\x1b[K\n", label_.c_str(), el, detail.c_str());
  else std::fprintf(stderr, "%s: done in %.1fs %s\n", label_.c_str(), el, detail.c_str());
}

}  // namespace lowbit

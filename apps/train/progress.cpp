#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <fmt/core.h>

namespace rnnkit::train {

std::string hms(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

Progress::Progress(bool quiet, int64_t log_every, std::string unit)
    : tty_(::isatty(STDERR_FILENO)), quiet_(quiet), log_every_(log_every), unit_(std::move(unit)) {}

void Progress::start_epoch(int64_t epoch, int64_t total, int64_t first) {
  epoch_ = epoch, total_ = total, done_ = first, first_ = first, units_ = 0;
  t0_ = Clock::now();
}

void Progress::step(int64_t step, double loss, int64_t units) {
  ++done_;
  units_ += units;
  if (quiet_) return;
  const double s = std::chrono::duration<double>(Clock::now() - t0_).count();
  const double rate = units_ / std::max(s, 1e-9);
  const double eta = s / std::max<int64_t>(done_ - first_, 1) * (total_ - done_);
  const double pct = 100.0 * done_ / std::max<int64_t>(total_, 1);
  if (tty_) {
    const int width = 24, filled = static_cast<int>(width * done_ / std::max<int64_t>(total_, 1));
    fmt::print(stderr, "\repoch {} {:3.0f}%|{}{}| {}/{} [{}<{}, {:.0f} {}/s] loss {:.4f}   ",
               epoch_ + 1, pct, std::string(filled, '#'), std::string(width - filled, ' '), done_,
               total_, hms(s), hms(eta), rate, unit_, loss);
  } else if (step % log_every_ == 0) {
    fmt::print(stderr,
               "epoch {} step {} batch {}/{} ({:.0f}%) loss {:.4f} {:.0f} {}/s elapsed {} ETA {}\n",
               epoch_ + 1, step, done_, total_, pct, loss, rate, unit_, hms(s), hms(eta));
  }
}

void Progress::end_epoch() {
  if (tty_ && !quiet_) fmt::print(stderr, "\n");
}

void Progress::note(const std::string& line) const {
  if (quiet_) return;
  // On a terminal the bar's line is cleared first; the next step draws it again below.
  fmt::print(stderr, "{}{}\n", tty_ ? "\r\033[K" : "", line);
}

}  // namespace rnnkit::train

#pragma once
// The progress display of a training run, on stderr: a bar redrawn in place on a terminal (as
// tqdm draws it), a line every log_every steps otherwise.
#include <chrono>
#include <cstdint>
#include <string>

namespace rnnkit::train {

/// h:mm:ss, as tqdm shows elapsed time and ETA.
std::string hms(double seconds);

class Progress {
 public:
  /// `quiet`: show nothing; `unit`: what the counts count ("tok", "sent").
  Progress(bool quiet, int64_t log_every, std::string unit);
  /// Epoch `epoch` (0-based) of `total` batches, starting at batch `first` (a resumed epoch).
  void start_epoch(int64_t epoch, int64_t total, int64_t first);
  /// After optimizer step `step`, whose batch had mean loss `loss` over `units` units.
  void step(int64_t step, double loss, int64_t units);
  void end_epoch();
  /// A line of its own (a skipped step), not overwritten by the bar.
  void note(const std::string& line) const;

 private:
  using Clock = std::chrono::steady_clock;
  bool tty_, quiet_;
  int64_t log_every_;
  std::string unit_;
  int64_t epoch_ = 0, total_ = 0, done_ = 0, first_ = 0, units_ = 0;
  Clock::time_point t0_;
};

}  // namespace rnnkit::train

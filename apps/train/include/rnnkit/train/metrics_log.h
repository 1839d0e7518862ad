#pragma once
// RUN_DIR/metrics.csv: one row per completed epoch (epoch, step, train_loss, the validation
// metrics, lr, precision, seconds), for plots (scripts/plot_metrics.sh) and comparisons. Read it
// by its header's names: columns may be added (precision was, before seconds).
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <rnnkit/train/task.h>

namespace rnnkit::train {

class MetricsLog {
 public:
  explicit MetricsLog(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  /// Appends epoch `epoch`'s row (1-based), writing the header when the file is new.
  /// `precision` is the epoch's train.precision ("fp32", "bf16", "fp16"): a resumed run may
  /// change it, so it is a column and not only config.toml's key. A file written before the
  /// column existed gets it, empty in its earlier rows (not recorded then).
  void append(int64_t epoch, int64_t step, double train_loss, const Metrics& m, double lr,
              const std::string& precision, double seconds) const;
  /// Drops the rows after epoch `epochs_done`: a run killed between writing an epoch's row and
  /// its last.pt would otherwise repeat the row when resumed.
  void trim(int64_t epochs_done) const;
  /// Epoch `epoch`'s row as (column name, cell text) pairs in the header's order (the last such
  /// row, should a file repeat one); nullopt when the file or the row is missing. The model
  /// cards of rnnkit-serve read it.
  std::optional<std::vector<std::pair<std::string, std::string>>> row(int64_t epoch) const;

 private:
  std::string path_;
};

}  // namespace rnnkit::train

#pragma once
// Every decision of a training run (marian-nmt's Scheduler): the learning rate (step decay,
// reduce-on-plateau, cosine annealing), which epoch is the best, early stopping, the time and
// step budgets, signals, and divergence. The loop reports what happened; the scheduler says
// what to do next, and keeps what it needs across a resume in the checkpoint.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <torch/serialize/archive.h>

#include "options.h"
#include "task.h"

namespace rnnkit::train {

/// Whether `value` improves on `best` by more than the relative `threshold`: below
/// best * (1 - threshold), or above best * (1 + threshold) where higher is better. Anything
/// improves on a NaN best (no epoch yet).
bool improves_on(double value, double best, bool higher, double threshold);

/// Cosine annealing: `base` at done = 0, `min` at done >= 1, min + (base - min)(1 + cos(pi done)) /
/// 2 between.
double cosine_learning_rate(double base, double min, double done);

/// What every process knows after a step's forward pass (StepStrategy::forward_backward): the
/// global batch's loss sum and unit count, and the stop requests (any process's signal; the
/// first process's clock for max_minutes).
struct StepReport {
  double loss_sum = 0;
  int64_t count = 0;
  bool nonfinite = false, time_up = false;
  int signal = 0;
  bool gathered = false;  ///< summed over several processes (no one process's loss to quote)
};

/// Where the loop stands: batch `batch` (0-based) of `batches` in epoch `epoch`, optimizer step
/// `step` (counted over resumes) and `steps_this_run` in this invocation.
struct Position {
  int64_t epoch = 0, batch = 0, batches = 0, step = 0, steps_this_run = 0;
};

class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Scheduler {
 public:
  /// `max_steps`: the command line's step budget for this invocation (0 = none).
  Scheduler(const TrainOptions& options, int64_t max_steps);

  /// The learning rate to set before the step at `at`, where the schedule sets it per step
  /// (cosine); otherwise -1.
  double rate_before_step(const Position& at) const;
  /// Whether this process's clock says the time budget is spent (max_minutes).
  bool out_of_time(double elapsed_seconds) const;

  enum class Next {
    kGoOn,
    kTimeUp,  ///< max_minutes: end the epoch here (evaluate it if it is complete, else pause)
    kStop,    ///< a signal or max_steps: take this step, write last.pt and return
  };
  /// After the forward and backward of the step at `at` (not yet counted in it), before the
  /// optimizer applies it. Throws TrainingDiverged for a loss that is not finite; `kept` says
  /// where the last good checkpoint is (empty: none was written).
  Next after_step(const StepReport& report, const Position& at, const std::string& kept) const;

  /// After epoch `epoch` was evaluated as `m`: whether it is the best so far (write best.pt).
  bool is_new_best(const Metrics& m);
  struct EpochEnd {
    double rate = 0;    ///< the learning rate for the next epoch
    bool stop = false;  ///< early stopping, or the time budget
    std::string why;    ///< why it stops, for the log
  };
  /// Then, with the learning rate `rate` the epoch ended with: what comes next. `time_up` when
  /// the time budget ran out in it.
  EpochEnd after_epoch(int64_t epoch, const Metrics& m, double rate, bool time_up);

  /// A resumed run that had already stopped early stays stopped.
  bool stopped_early() const;
  double best() const { return best_; }
  /// The best epoch's metrics, as the log shows them.
  const std::string& best_metrics() const { return best_metrics_; }

  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  const TrainOptions& o_;
  int64_t max_steps_;
  double best_ = NAN;  ///< the best validation value so far (NaN before the first epoch)
  int64_t bad_epochs_ = 0;
  std::string best_metrics_;
  double plateau_best_ =
      NAN;  ///< reduce-on-plateau's reference, which moves only past the threshold
  int64_t plateau_bad_ = 0;
};

/// "name value, name value", as the log prints metrics.
std::string metrics_text(const Metrics& m);

}  // namespace rnnkit::train

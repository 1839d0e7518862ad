#pragma once
// The one training loop every app uses (docs/architecture.md).
//
// An app describes its work as a Task (task.h: model, batches, loss, evaluation); fit() does the
// rest: optimizer, clipping, progress, metrics.csv, atomic checkpoints (`best` and `last`),
// exact resume, clean stop on SIGINT/SIGTERM, and exclusive use of the run dir. Its Scheduler
// (scheduler.h) makes every decision: learning rate, best epoch, early stopping, budgets,
// divergence. Its StepStrategy (step_strategy.h) shares each step among processes: alone, or
// data-parallel under torchrun, where each process trains on its Shard of every global batch,
// gradients are all-reduced before clipping with each process weighted by its share, only the
// first process writes, and stop decisions are exchanged every step so that all stop together.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <torch/types.h>

#include "config.h"
#include "options.h"
#include "scheduler.h"
#include "step_strategy.h"
#include "task.h"

namespace rnnkit::train {

/// Checks the device string (and that CUDA is there if asked), joins the process group for a
/// distributed run (where `--device cuda` means cuda:LOCAL_RANK), sets the thread count, and
/// seeds (rank r with seed + r; rank 0's model is broadcast, so the others' draws only differ
/// in dropout).
torch::Device setup_runtime(const RunOptions& run, int64_t seed);

/// The warning that bf16 on this CPU is slower than fp32 (no avx512_bf16 or amx_bf16), naming
/// `setting` (train.precision or --precision) and the missing flag; nothing otherwise.
void warn_if_bf16_is_slow(Precision precision, c10::DeviceType device, const std::string& setting);

/// `run` where a stage of a run trains on its own in its run dir: it resumes exactly when the
/// run resumes (--resume or --auto-resume) and the dir holds a last.pt; otherwise it starts.
RunOptions resumed_if_started(const RunOptions& run);
/// A stage of `run` in a folder of its run dir (RUN_DIR/name: "fold3", "pretrain"), resumed
/// exactly when its own last.pt exists (resumed_if_started).
RunOptions sub_run(const RunOptions& run, const std::string& name);
/// RUN_DIR/best.pt of `run`.
std::string best_checkpoint(const RunOptions& run);

/// A warning on stderr ("warning: " + message), said once: by the process that reports (rank
/// 0 of a data-parallel run), so that a task needs no word of the process group.
void warn(const std::string& message);

struct FitResult {
  int64_t epochs_done = 0, steps = 0;
  bool interrupted = false, early_stopped = false;
  int signal = 0;  ///< the signal that stopped it (interrupted by SIGINT/SIGTERM), else 0
  Metrics best;
  Metrics last;  ///< the evaluation after the last completed epoch
  Metrics test;  ///< data.test scored once by the best checkpoint, when the config has one
  /// Steps of this run whose gradients overflowed under loss scaling: not applied
  /// (train.grad_scaler).
  int64_t skipped_steps = 0;
};

/// Trains `task` under `options`; `config_text` (the resolved config) is saved beside the
/// checkpoints and inside them. Throws TrainingDiverged on a NaN or infinite loss, RunDirBusy
/// when another process trains in the run dir, and RunDirError when the run dir holds a run
/// and neither `resume` nor `overwrite` is set.
FitResult fit(Task& task, const TrainOptions& options, const RunOptions& run,
              const std::string& config_text);
/// The same with another way of sharing steps among processes (step_strategy.h).
FitResult fit(Task& task, const TrainOptions& options, const RunOptions& run,
              const std::string& config_text, std::unique_ptr<StepStrategy> strategy);

class RunDirError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The checkpoint that scores data.test (`test_path`) once fit() has returned `r`: best.pt, or
/// none when there is no test file, on ranks other than 0, when the run was interrupted, or when
/// no epoch has ended yet (a max_minutes pause inside the first epoch, which it says on stderr).
std::optional<std::string> test_checkpoint(const RunOptions& run, const FitResult& r,
                                           const std::string& test_path);

/// Prints data.test's metrics ("test: ...") and writes them to RUN_DIR/test.json (rank 0).
void report_test(const RunOptions& run, const Metrics& test);

/// Throws RunDirError if `run.run_dir` holds a run (best.pt or last.pt) and neither resume nor
/// overwrite is set: train commands call it before loading any data, fit() again under the lock.
void check_run_dir(const RunOptions& run);

/// The exit status of a training command: 0, or 128 + the signal that stopped it.
inline int exit_status(const FitResult& r) { return r.signal ? 128 + r.signal : 0; }
/// exit_status(r), after "done: N epochs, M steps; checkpoints in DIR" on stderr unless the
/// run was quiet or interrupted.
int report_done(const RunOptions& run, const FitResult& r);

}  // namespace rnnkit::train

namespace rnnkit {
/// The framework's namespace was rnnkit::app before it was named for what it is; the old name
/// still works, and is deprecated.
namespace app = train;
}  // namespace rnnkit

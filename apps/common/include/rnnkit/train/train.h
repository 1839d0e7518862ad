#pragma once
// The one training loop every app uses.
//
// An app describes its work as a Task (model, batches, loss, evaluation); fit() does the rest:
// optimizer, schedule, clipping, early stopping, progress, metrics log, atomic checkpoints
// (`best` and `last`), exact resume, clean stop on SIGINT/SIGTERM, divergence checks, and
// exclusive use of the run dir.
//
// Data parallelism (torchrun; distributed.h): each rank's Task trains on its share of every
// global batch (plan_epoch and the LM stream batcher shard by rank), fit() all-reduces the
// gradients before clipping, weighting each rank by its share, and only rank 0 writes
// checkpoints, metrics and progress. Stop decisions (signals, max_minutes, NaN) are exchanged
// every step, so every rank stops at the same step.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "config.h"
#include "distributed.h"

namespace rnnkit::app {

/// Settings of the [train] section shared by every app.
struct TrainOptions {
  int64_t epochs = 10;
  /// Stop once this much training time has passed over all resumes; 0 = off. Mid-epoch it
  /// pauses the epoch (last.pt and a reported evaluation; best, schedule, metrics untouched).
  double max_minutes = 0;
  int64_t batch_size = 32;
  std::string optimizer = "adam";  ///< sgd, adam, adamw
  double learning_rate = 1e-3, momentum = 0.0, weight_decay = 0.0;
  double clip_norm = 0.0;         ///< rescale gradients whose global L2 norm exceeds this; 0 = off
  double clip_value = 0.0;        ///< clamp each gradient element into [-v, v]; 0 = off
  std::string schedule = "none";  ///< none, step, plateau, cosine
  int64_t step_size = 1;          ///< step: decay every step_size epochs...
  int64_t decay_start = 0;        ///< ...once this many epochs are done (Zaremba et al.: 4)
  double gamma = 0.5;             ///< step and plateau: the decay factor
  int64_t plateau_patience = 0;   ///< plateau: epochs without improvement before decaying
  /// plateau: the relative improvement that counts as one (PyTorch's ReduceLROnPlateau
  /// `threshold`, rel mode); 0 = any improvement
  double plateau_threshold = 0.0;
  double min_lr = 0.0;         ///< cosine: the rate at the end of the last epoch
  int64_t early_stopping = 0;  ///< stop after this many epochs without improvement; 0 = off
  int64_t seed = 1;
  int64_t log_every = 100;  ///< steps between progress lines when stderr is not a terminal

  /// Reads [train] (or another section with the same keys, such as sentiment's [pretrain]),
  /// falling back to `defaults`; fails on wrong types and out-of-range values. `epochs` may be 0
  /// only where the default is 0 (an optional phase).
  static TrainOptions read(ConfigReader& config, const std::string& section,
                           const TrainOptions& defaults);
  static TrainOptions read(ConfigReader& config) { return read(config, "train", TrainOptions()); }
};

/// Whether `value` improves on `best` by more than the relative `threshold`: below
/// best * (1 - threshold), or above best * (1 + threshold) where higher is better. Anything
/// improves on a NaN best (no epoch yet).
bool improves_on(double value, double best, bool higher, double threshold);

/// Cosine annealing: `base` at done = 0, `min` at done >= 1, min + (base - min)(1 + cos(pi done)) /
/// 2 between.
double cosine_learning_rate(double base, double min, double done);

/// The shuffled, length-bucketed batches of epoch `epoch` (0-based) under `options`' batch size
/// and seed: the same arguments give the same plan, so a resumed run sees the same batches.
/// In a data-parallel run each global batch is this rank's share of it (elements r, r + W, ...),
/// so a rank may get an empty batch at the end of an epoch; its task returns a zero count then.
std::vector<std::vector<size_t>> plan_epoch(const std::vector<size_t>& lengths,
                                            const TrainOptions& options, int64_t epoch);

/// Settings of one invocation, from the command line.
struct RunOptions {
  std::string device = "cpu";  ///< cpu, cuda, cuda:N
  int threads = 0;             ///< 0 = the cores this process may use
  std::string run_dir;         ///< checkpoints, the resolved config and metrics.csv go here
  bool resume = false;
  /// Resume when the run dir holds last.pt, start afresh when it is new (restarted jobs).
  bool auto_resume = false;
  bool overwrite = false;  ///< start afresh in a run dir that holds a run, replacing it
  int64_t max_steps = 0;   ///< stop after this many optimizer steps in this invocation (0 = off)
  bool quiet = false;
  /// Training commands join torchrun's process group when its environment is set.
  bool distributed = false;
  dist::Options dist;
};

/// Checks the device string (and that CUDA is there if asked), joins the process group for a
/// distributed run (where `--device cuda` means cuda:LOCAL_RANK), sets the thread count, and
/// seeds (rank r with seed + r; rank 0's model is broadcast, so the others' draws only differ
/// in dropout).
torch::Device setup_runtime(const RunOptions& run, int64_t seed);

struct BatchLoss {
  torch::Tensor loss;  ///< mean over the batch's units (tokens, sentences), to backpropagate
  int64_t count = 0;   ///< how many units it averages
};

/// Validation results; `main` names the value that decides `best`, plateau and early stopping.
struct Metrics {
  std::vector<std::pair<std::string, double>> values;
  std::string main;
  bool higher_is_better = false;
  double get(const std::string& name) const;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual torch::nn::Module& model() = 0;
  /// What BatchLoss::count counts, for the progress display ("tok", "sent").
  virtual std::string unit() const { return "ex"; }
  /// Which app wrote a checkpoint, and the model's shape: a checkpoint whose architecture
  /// differs from the config is refused.
  virtual std::string app_name() const = 0;
  virtual std::string architecture() const = 0;
  /// Plans epoch `epoch` (0-based) and returns its number of batches.
  virtual int64_t begin_epoch(int64_t epoch) = 0;
  /// This rank's share of batch `index`: the mean loss over its units, and their count (0, with
  /// an undefined loss, for an empty share).
  virtual BatchLoss train_batch(int64_t index) = 0;
  /// Metrics on the whole validation data (every rank computes them; rank 0's are used).
  /// Long loops call throw_if_stopped() (signals.h) so that a stop is seen within a batch.
  virtual Metrics evaluate() = 0;
  /// Task state that must survive an interruption (a carried LM state, the vocabularies). Called
  /// on every rank (it may gather from the others); rank 0's archive is the one written, and it
  /// must not depend on the world size.
  virtual void save_state(torch::serialize::OutputArchive& archive) const { (void)archive; }
  virtual void load_state(torch::serialize::InputArchive& archive) { (void)archive; }
};

/// A Task over a fixed set of sentences (or texts) batched by length: it owns their lengths,
/// plans each epoch's batches with plan_epoch (this rank's share in a data-parallel run) and
/// hands train_on the indices of one batch, never an empty share.
class SentenceTask : public Task {
 public:
  int64_t begin_epoch(int64_t epoch) final {
    plan_ = plan_epoch(lengths_, options_, epoch);
    return static_cast<int64_t>(plan_.size());
  }
  BatchLoss train_batch(int64_t index) final {
    const auto& idx = plan_.at(static_cast<size_t>(index));
    if (idx.empty()) return {};  // this rank's share of a short last batch
    return train_on(idx);
  }

 protected:
  /// `options` gives the batch size and seed; `lengths` one entry per training example.
  SentenceTask(const TrainOptions& options, std::vector<size_t> lengths)
      : options_(options), lengths_(std::move(lengths)) {}
  virtual BatchLoss train_on(const std::vector<size_t>& indices) = 0;

 private:
  const TrainOptions& options_;
  std::vector<size_t> lengths_;
  std::vector<std::vector<size_t>> plan_;
};

struct FitResult {
  int64_t epochs_done = 0, steps = 0;
  bool interrupted = false, early_stopped = false;
  int signal = 0;  ///< the signal that stopped it (interrupted by SIGINT/SIGTERM), else 0
  Metrics best;
  Metrics last;  ///< the evaluation after the last completed epoch
  Metrics test;  ///< data.test scored once by the best checkpoint, when the config has one
};

/// Trains `task` under `options`; `config_text` (the resolved config) is saved beside the
/// checkpoints and inside them. Throws TrainingDiverged on a NaN or infinite loss, RunDirBusy
/// when another process trains in the run dir, and RunDirError when the run dir holds a run
/// and neither `resume` nor `overwrite` is set.
FitResult fit(Task& task, const TrainOptions& options, const RunOptions& run,
              const std::string& config_text);

class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
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

}  // namespace rnnkit::app

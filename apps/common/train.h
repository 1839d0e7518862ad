#pragma once
// The one training loop every app uses.
//
// An app describes its work as a Task (model, batches, loss, evaluation); fit() does the rest:
// optimizer, schedule, clipping, early stopping, progress, metrics log, atomic checkpoints
// (`best` and `last`), exact resume, clean stop on SIGINT/SIGTERM, and divergence checks.
//
// Room for data parallelism: batches come from Task (which shards them by rank), gradients
// pass through one reduce_gradients() call before clipping, and only rank 0 writes checkpoints
// and logs. Today world_size is always 1.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "config.h"

namespace rnnkit::app {

/// Settings of the [train] section shared by every app.
struct TrainOptions {
  int64_t epochs = 10;
  double max_minutes = 0;  ///< stop (after a full evaluation) once this much time has passed; 0 = off
  int64_t batch_size = 32;
  std::string optimizer = "adam";  ///< sgd, adam, adamw
  double learning_rate = 1e-3, momentum = 0.0, weight_decay = 0.0;
  double clip_norm = 0.0;   ///< rescale gradients whose global L2 norm exceeds this; 0 = off
  double clip_value = 0.0;  ///< clamp each gradient element into [-v, v]; 0 = off
  std::string schedule = "none";  ///< none, step, plateau
  int64_t step_size = 1;          ///< step: decay every step_size epochs...
  int64_t decay_start = 0;        ///< ...once this many epochs are done (Zaremba et al.: 4)
  double gamma = 0.5;             ///< step and plateau: the decay factor
  int64_t plateau_patience = 0;   ///< plateau: epochs without improvement before decaying
  int64_t early_stopping = 0;     ///< stop after this many epochs without improvement; 0 = off
  int64_t seed = 1;
  int64_t log_every = 100;  ///< steps between progress lines when stderr is not a terminal

  /// Reads [train] (or another section with the same keys, such as sentiment's [pretrain]),
  /// falling back to `defaults`; fails on wrong types and out-of-range values. `epochs` may be 0
  /// only where the default is 0 (an optional phase).
  static TrainOptions read(ConfigReader& config, const std::string& section,
                           const TrainOptions& defaults);
  static TrainOptions read(ConfigReader& config) { return read(config, "train", TrainOptions()); }
};

/// The shuffled, length-bucketed batches of epoch `epoch` (0-based) under `options`' batch size
/// and seed: the same arguments give the same plan, so a resumed run sees the same batches.
std::vector<std::vector<size_t>> plan_epoch(const std::vector<size_t>& lengths, const TrainOptions& options,
                                            int64_t epoch);

/// Settings of one invocation, from the command line.
struct RunOptions {
  std::string device = "cpu";  ///< cpu, cuda, cuda:N
  int threads = 0;             ///< 0 = all cores
  std::string run_dir;         ///< checkpoints, the resolved config and metrics.csv go here
  bool resume = false;
  int64_t max_steps = 0;       ///< stop after this many optimizer steps in this invocation (0 = off)
  bool quiet = false;
};

/// Checks the device string (and that CUDA is there if asked), sets the thread count, seeds.
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
  /// Which app wrote a checkpoint, and the model's shape: a checkpoint whose architecture
  /// differs from the config is refused.
  virtual std::string app_name() const = 0;
  virtual std::string architecture() const = 0;
  /// Plans epoch `epoch` (0-based) and returns its number of batches.
  virtual int64_t begin_epoch(int64_t epoch) = 0;
  virtual BatchLoss train_batch(int64_t index) = 0;
  virtual Metrics evaluate() = 0;
  /// Task state that must survive an interruption (a carried LM state, the vocabularies).
  virtual void save_state(torch::serialize::OutputArchive& archive) const { (void)archive; }
  virtual void load_state(torch::serialize::InputArchive& archive) { (void)archive; }
};

struct FitResult {
  int64_t epochs_done = 0, steps = 0;
  bool interrupted = false, early_stopped = false;
  Metrics best;
  Metrics last;  ///< the evaluation after the last completed epoch
};

/// Trains `task` under `options`; `config_text` (the resolved config) is saved beside the
/// checkpoints and inside them. Throws TrainingDiverged on a NaN or infinite loss.
FitResult fit(Task& task, const TrainOptions& options, const RunOptions& run,
              const std::string& config_text);

class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace rnnkit::app

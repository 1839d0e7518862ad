#pragma once
// The settings of a training run: [train] from the config (TrainOptions) and the command line's
// (RunOptions).
#include <cstdint>
#include <string>

#include "config.h"
#include "config_keys.h"
#include "dist_options.h"

namespace rnnkit::train {

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
  /// fp32, or bf16 (or fp16, on CUDA only): the forward's matrix products under autocast, the
  /// rest fp32 (rnnkit/precision.h).
  std::string precision = "fp32";
  /// Loss scaling (rnnkit/grad_scaler.h): "auto" (dynamic under fp16, off otherwise),
  /// "dynamic" or "off"; its first scale and the steps without overflow before it grows.
  std::string grad_scaler = "auto";
  double grad_scaler_init = 65536.0;
  int64_t grad_scaler_interval = 2000;

  /// Reads [train] (or another section with the same keys, such as sentiment's [pretrain]),
  /// falling back to `defaults`; fails on wrong types and out-of-range values. `epochs` may be 0
  /// only where the default is 0 (an optional phase).
  static TrainOptions read(ConfigReader& config, const std::string& section,
                           const TrainOptions& defaults);
  /// The keys read reads, in `section`, with `defaults`' values as their defaults.
  static KeyTable keys(const std::string& section, const TrainOptions& defaults);
  /// [train]'s keys with this struct's defaults.
  static KeyTable keys();
  static TrainOptions read(ConfigReader& config) { return read(config, "train", TrainOptions()); }
};

/// Settings of one invocation, from the command line.
struct RunOptions {
  std::string device = "cpu";  ///< cpu, cuda, cuda:N
  int threads = 0;             ///< 0 = the cores this process may use
  /// --precision of the commands that load a checkpoint (eval, predict, score, sample): the
  /// whole command under autocast (setup_runtime). Training takes train.precision instead.
  std::string precision = "fp32";
  std::string run_dir;  ///< checkpoints, the resolved config and metrics.csv go here
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

}  // namespace rnnkit::train

#pragma once
// What an app hands the training loop: a Task (model, batches, loss, evaluation) and what it
// gets back from it. A task never sees the process group: fit() gives it a Shard for its
// batching and gathers its sharded state for checkpoints (docs/architecture.md).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "options.h"

namespace rnnkit::train {

/// Which part of every global batch this process trains on, in a data-parallel run of `world`
/// processes: elements rank, rank + world, ... of a batch of sentences (plan_epoch), columns
/// [rank·B/world, (rank+1)·B/world) of a batch of LM streams (Shard::columns). {0, 1} alone.
struct Shard {
  int rank = 0, world = 1;
  /// This shard's slice of `t` along `dim`, whose size must be a multiple of the world size.
  torch::Tensor slice(const torch::Tensor& t, int64_t dim = 0) const;
};

/// The shuffled, length-bucketed batches of epoch `epoch` (0-based) under `options`' batch size
/// and seed, as `shard` sees them: the same arguments give the same plan, so a resumed run sees
/// the same batches. With more than one process each global batch is this shard's share of it,
/// so a shard may get an empty batch at the end of an epoch; its task returns a zero count then.
std::vector<std::vector<size_t>> plan_epoch(const std::vector<size_t>& lengths,
                                            const TrainOptions& options, int64_t epoch,
                                            const Shard& shard);

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
  /// Plans epoch `epoch` (0-based) and returns its number of (global) batches.
  virtual int64_t begin_epoch(int64_t epoch) = 0;
  /// This shard's part of batch `index`: the mean loss over its units, and their count (0, with
  /// an undefined loss, for an empty share).
  virtual BatchLoss train_batch(int64_t index) = 0;
  /// Metrics on the whole validation data (every process computes them; the first one's are
  /// used). Long loops call throw_if_stopped() (signals.h) so that a stop is seen within a batch.
  virtual Metrics evaluate() = 0;
  /// Task state that must survive an interruption (the vocabularies, how much is carried). It
  /// must not depend on the world size: state each shard holds a slice of goes in
  /// sharded_state() instead.
  virtual void save_state(torch::serialize::OutputArchive& archive) const { (void)archive; }
  /// Reads what save_state and sharded_state wrote; a sharded tensor comes back whole, and
  /// shard().slice() gives this process's part of it.
  virtual void load_state(torch::serialize::InputArchive& archive) { (void)archive; }
  /// Tensors that each shard holds a slice of along dim 0, in shard order (an LM's carried
  /// state): fit() writes each one whole, gathered from every process, into the task's archive
  /// under its name, so that a run resumes with any world size.
  virtual std::vector<std::pair<std::string, torch::Tensor>> sharded_state() const { return {}; }

  /// Set by fit() before the first begin_epoch.
  const Shard& shard() const { return shard_; }
  void set_shard(const Shard& shard) { shard_ = shard; }

 private:
  Shard shard_;
};

/// A Task over a fixed set of sentences (or texts) batched by length: it owns their lengths,
/// plans each epoch's batches with plan_epoch (this shard's share) and hands train_on the
/// indices of one batch, never an empty share.
class SentenceTask : public Task {
 public:
  int64_t begin_epoch(int64_t epoch) final {
    plan_ = plan_epoch(lengths_, options_, epoch, shard());
    return static_cast<int64_t>(plan_.size());
  }
  BatchLoss train_batch(int64_t index) final {
    const auto& idx = plan_.at(static_cast<size_t>(index));
    if (idx.empty()) return {};  // this shard's share of a short last batch
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

}  // namespace rnnkit::train

#pragma once
// How an optimizer step is shared among processes (marian-nmt's communicators). fit() runs the
// same loop alone or under torchrun; everything that differs is here: the forward and backward
// of this process's share of a batch with its loss weighted by that share, the exchange of loss
// sums and stop requests, gradient averaging, the first process's metrics and decisions on
// every process, and gathering state for checkpoints. Tasks never see it (task.h).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <rnnkit/precision.h>

#include "scheduler.h"
#include "task.h"

namespace rnnkit::train {

class StepStrategy {
 public:
  virtual ~StepStrategy() = default;
  /// This process's part of every batch.
  virtual Shard shard() const = 0;
  /// Whether this process writes checkpoints, metrics.csv and the progress display (the first).
  bool writes() const { return shard().rank == 0; }

  /// Throws std::invalid_argument naming the first key where this process's resolved config
  /// (with its data files' fingerprints) differs from the first process's.
  virtual void agree_on_config(const std::string& config_text) = 0;
  /// The first process's `s`, on every process.
  virtual std::string from_first(const std::string& s) = 0;
  /// Runs `fn` on the first process only; its failure is every process's.
  virtual void on_first(const std::function<void()>& fn) = 0;
  /// The first process's parameters and buffers, on every process.
  virtual void synchronize(torch::nn::Module& model) = 0;

  /// One step's forward and backward: this process's share of batch `index`, then the report
  /// exchanged (`out_of_time`, asked after the forward: whether this process's clock says the
  /// time budget is spent). Unless
  /// the loss is not finite, the share's loss is backpropagated with its weight (times the loss
  /// scale) and the gradients of `params` are averaged over the processes: they are then the
  /// global batch's mean gradient, whatever the shares, and the same on every process (an inf
  /// on one is an inf on all, so every process skips an overflowed step). The gradients must
  /// be zero on entry.
  virtual StepReport forward_backward(Task& task, int64_t index,
                                      const std::function<bool()>& out_of_time,
                                      const std::vector<torch::Tensor>& params) = 0;
  /// The first process's metrics, on every process (so that every decision agrees).
  virtual Metrics agree_on(Metrics m) = 0;
  /// One equally shaped tensor from every process, in shard order.
  virtual std::vector<torch::Tensor> gather(const torch::Tensor& t) = 0;

  /// task.train_batch(index) under the run's precision (set by fit() from train.precision):
  /// autocast for the forward alone, as in PyTorch, so the backward runs outside it. A
  /// strategy's forward_backward calls this, not task.train_batch.
  BatchLoss train_batch(Task& task, int64_t index) const {
    const AutocastGuard autocast(precision_, device_type_);
    return task.train_batch(index);
  }
  void set_precision(Precision precision, c10::DeviceType device) {
    precision_ = precision;
    device_type_ = device;
  }
  /// The factor the next step's loss is multiplied by before backward (the GradScaler's scale
  /// when fit() scales losses, else 1); fit() divides the gradients by it again.
  void set_loss_scale(double scale) { loss_scale_ = scale; }

 protected:
  /// Backpropagates `loss` · weight · the loss scale.
  void backward(const torch::Tensor& loss, double weight) const {
    const double factor = weight * loss_scale_;
    (factor == 1.0 ? loss : loss * factor).backward();
  }

 private:
  Precision precision_ = Precision::kFP32;
  c10::DeviceType device_type_ = c10::DeviceType::CPU;
  double loss_scale_ = 1.0;
};

/// One process.
std::unique_ptr<StepStrategy> single_process();
/// The torchrun process group (distributed.h), which must be up.
std::unique_ptr<StepStrategy> data_parallel();
/// data_parallel() when a process group of more than one process is up, else single_process().
std::unique_ptr<StepStrategy> make_step_strategy();

}  // namespace rnnkit::train

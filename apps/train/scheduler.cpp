#include <rnnkit/train/scheduler.h>

#include <algorithm>

#include <fmt/core.h>

#include <rnnkit/train/checkpoint.h>

namespace rnnkit::train {

bool improves_on(double value, double best, bool higher, double threshold) {
  if (std::isnan(best)) return true;
  return higher ? value > best * (1 + threshold) : value < best * (1 - threshold);
}

double cosine_learning_rate(double base, double min, double done) {
  const double f = std::clamp(done, 0.0, 1.0);
  return min + 0.5 * (base - min) * (1.0 + std::cos(M_PI * f));
}

std::string metrics_text(const Metrics& m) {
  std::string s;
  for (const auto& [k, v] : m.values) s += fmt::format("{}{} {:.4f}", s.empty() ? "" : ", ", k, v);
  return s;
}

Scheduler::Scheduler(const TrainOptions& options, int64_t max_steps)
    : o_(options), max_steps_(max_steps) {}

double Scheduler::rate_before_step(const Position& at) const {
  if (o_.schedule != "cosine") return -1;
  // Cosine annealing (Loshchilov & Hutter 2017, without restarts) from learning_rate at the
  // start to min_lr at the end of the last epoch, by position alone, so a resumed run needs no
  // state.
  const double done =
      (static_cast<double>(at.epoch) +
       static_cast<double>(at.batch) / static_cast<double>(std::max<int64_t>(at.batches, 1))) /
      static_cast<double>(std::max<int64_t>(o_.epochs, 1));
  return cosine_learning_rate(o_.learning_rate, o_.min_lr, done);
}

bool Scheduler::out_of_time(double elapsed_seconds) const {
  // Checked every step: an epoch can be long (a 1 MB corpus).
  return o_.max_minutes > 0 && elapsed_seconds >= o_.max_minutes * 60;
}

Scheduler::Next Scheduler::after_step(const StepReport& r, const Position& at,
                                      const std::string& kept) const {
  if (r.nonfinite) {
    throw TrainingDiverged(fmt::format(
        "training diverged: the loss is {} at step {} (epoch {}, batch {}); {}{}",
        r.gathered ? "not finite" : fmt::format("{}", r.loss_sum / static_cast<double>(r.count)),
        at.step + 1, at.epoch + 1, at.batch + 1,
        kept.empty() ? "no checkpoint was written before it"
                     : "the last good checkpoint is kept in " + kept,
        o_.clip_norm == 0 ? "; try clip_norm or a lower learning_rate" : ""));
  }
  if (r.signal != 0 || (max_steps_ > 0 && at.steps_this_run + 1 >= max_steps_)) return Next::kStop;
  return r.time_up ? Next::kTimeUp : Next::kGoOn;
}

bool Scheduler::is_new_best(const Metrics& m) {
  if (!improves_on(m.get(m.main), best_, m.higher_is_better, 0.0)) {
    ++bad_epochs_;
    return false;
  }
  best_ = m.get(m.main);
  best_metrics_ = metrics_text(m);
  bad_epochs_ = 0;
  return true;
}

Scheduler::EpochEnd Scheduler::after_epoch(int64_t epoch, const Metrics& m, double rate,
                                           bool time_up) {
  EpochEnd e;
  const double value = m.get(m.main);
  if (o_.schedule == "cosine") {
    // Where the next epoch starts, as metrics.csv reports it.
    rate = rate_before_step({epoch + 1, 0, 1});
  } else if (o_.schedule == "step") {
    if (epoch + 1 >= o_.decay_start && (epoch + 1) % o_.step_size == 0) rate *= o_.gamma;
  } else if (o_.schedule == "plateau") {
    // As ReduceLROnPlateau: only a gain past the threshold resets the count and becomes the
    // reference, so small gains count as none until together they pass it.
    if (improves_on(value, plateau_best_, m.higher_is_better, o_.plateau_threshold)) {
      plateau_best_ = value;
      plateau_bad_ = 0;
    } else if (++plateau_bad_ > o_.plateau_patience) {
      rate *= o_.gamma;
      plateau_bad_ = 0;
    }
  }
  e.rate = rate;
  if (stopped_early()) {
    e.stop = true;
    e.why = fmt::format("early stopping: {} epochs without improvement", bad_epochs_);
  } else if (time_up) {
    e.stop = true;
    e.why = fmt::format("stopping: max_minutes = {} reached", o_.max_minutes);
  }
  return e;
}

bool Scheduler::stopped_early() const {
  return o_.early_stopping > 0 && bad_epochs_ >= o_.early_stopping;
}

// The keys are those of the checkpoints written before the scheduler had a file of its own.
void Scheduler::save(torch::serialize::OutputArchive& a) const {
  put_int(a, "train/bad_epochs", bad_epochs_);
  put_double(a, "train/best", best_);
  put_string(a, "train/best_metrics", best_metrics_);
  put_int(a, "train/plateau_bad", plateau_bad_);
  put_double(a, "train/plateau_best", plateau_best_);
}

void Scheduler::load(torch::serialize::InputArchive& a) {
  bad_epochs_ = get_int(a, "train/bad_epochs");
  best_ = get_double(a, "train/best");
  best_metrics_ = get_string(a, "train/best_metrics");
  plateau_bad_ = get_int(a, "train/plateau_bad");
  plateau_best_ = get_double(a, "train/plateau_best");
}

}  // namespace rnnkit::train

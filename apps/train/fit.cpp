// fit(): the training loop. Decisions are the Scheduler's, communication the StepStrategy's;
// what is left here is the order of things, the run dir, and checkpoints.
#include <filesystem>
#include <optional>
#include <set>

#include <fmt/core.h>
#include <torch/cuda.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim.h>

#include <rnnkit/compat.h>
#include <rnnkit/data/text.h>
#include <rnnkit/grad_scaler.h>
#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/scheduler.h>
#include <rnnkit/train/signals.h>
#include <rnnkit/train/step_strategy.h>
#include <rnnkit/train/system.h>
#include <rnnkit/train/train.h>

#include <rnnkit/train/metrics_log.h>
#include "progress.h"

namespace rnnkit::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> params,
                                                        const TrainOptions& o) {
  if (o.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(o.learning_rate)
                                                           .momentum(o.momentum)
                                                           .weight_decay(o.weight_decay));
  }
  if (o.optimizer == "adamw") {
    return std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay));
  }
  return std::make_unique<torch::optim::Adam>(
      params, torch::optim::AdamOptions(o.learning_rate).weight_decay(o.weight_decay));
}

double get_lr(torch::optim::Optimizer& opt) {
  return opt.param_groups().front().options().get_lr();
}
void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

/// Where the loop is: everything a resumed run needs besides the model, the optimizer, the
/// scheduler, the task and the random streams.
struct LoopState {
  int64_t epoch = 0, batch = 0, step = 0;
  double elapsed = 0;
  double loss_sum = 0;  // this epoch's training loss so far, so a resumed epoch reports it all
  int64_t loss_count = 0;

  void save(torch::serialize::OutputArchive& a) const {
    put_int(a, "train/epoch", epoch);
    put_int(a, "train/batch", batch);
    put_int(a, "train/step", step);
    put_double(a, "train/elapsed", elapsed);
    put_double(a, "train/loss_sum", loss_sum);
    put_int(a, "train/loss_count", loss_count);
  }
  void load(torch::serialize::InputArchive& a) {
    epoch = get_int(a, "train/epoch");
    batch = get_int(a, "train/batch");
    step = get_int(a, "train/step");
    elapsed = get_double(a, "train/elapsed");
    loss_sum = get_double(a, "train/loss_sum");
    loss_count = get_int(a, "train/loss_count");
  }
};

/// Below this loss scale an overflow is a divergence (fairseq's min_loss_scale, 1e-4).
constexpr double kMinLossScale = 1e-4;

/// fit(), as the state it keeps and the phases it goes through.
class FitLoop {
 public:
  FitLoop(Task& task, const TrainOptions& o, const RunOptions& run, const std::string& config_text,
          std::unique_ptr<StepStrategy> strategy)
      : task_(task),
        o_(o),
        run_(run),
        config_text_(config_text),
        strategy_(std::move(strategy)),
        quiet_(run.quiet || !strategy_->writes()),
        last_path_((fs::path(run.run_dir) / "last.pt").string()),
        best_path_((fs::path(run.run_dir) / "best.pt").string()),
        metrics_((fs::path(run.run_dir) / "metrics.csv").string()),
        model_(task.model()),
        device_(model_.parameters().front().device()),
        params_(model_.parameters()),
        optimizer_(make_optimizer(params_, o)),
        scheduler_(o, run.max_steps),
        progress_(quiet_, o.log_every, task.unit()) {
    const int world = strategy_->shard().world;
    if (o.batch_size % world != 0) {
      throw std::invalid_argument(
          fmt::format("train.batch_size = {} is the global batch, shared by {} processes; it must "
                      "be a multiple of the world size (each rank takes batch_size / world_size)",
                      o.batch_size, world));
    }
    task_.set_shard(strategy_->shard());
    set_precision();
  }

  FitResult run() {
    start();
    r_.early_stopped = scheduler_.stopped_early();
    for (; !r_.early_stopped && st_.epoch < o_.epochs; ++st_.epoch) {
      const int64_t n = begin_epoch();
      bool time_up = false;
      for (; st_.batch < n && !time_up; ++st_.batch) {
        const Scheduler::Next next = step(n);
        if (next == Scheduler::Next::kStop) {
          st_.elapsed = elapsed();
          save(last_path_, st_.epoch, st_.batch + 1);
          progress_.end_epoch();
          return stopped(step_signal_, "max_steps");
        }
        time_up = next == Scheduler::Next::kTimeUp;
      }
      progress_.end_epoch();
      if (time_up && st_.batch < n) return pause_mid_epoch(n);
      Metrics m;
      try {
        m = evaluate();
      } catch (const Interrupted& e) {
        // This epoch's training is done: --resume evaluates it again, then goes on.
        st_.elapsed = elapsed();
        save(last_path_, st_.epoch, st_.batch);
        return stopped(e.signal, "");
      }
      if (end_epoch(m, time_up)) break;
    }
    r_.steps = st_.step;
    if (r_.last.values.empty()) {  // resumed a finished run: nothing trained, still report it
      r_.last = evaluate();
      if (r_.best.values.empty()) r_.best = r_.last;
    }
    return r_;
  }

 private:
  /// The ranks agree on the config, the run dir is prepared (or resumed from), and every rank
  /// starts from the first one's model.
  void start() {
    strategy_->agree_on_config(config_text_);
    if (prepare_run_dir()) resume_from_last();
    strategy_->synchronize(model_);
    t_start_ = Clock::now();
    elapsed_before_ = st_.elapsed;
  }

  /// Plans the epoch; a resumed epoch continues where it stopped.
  int64_t begin_epoch() {
    const int64_t n = task_.begin_epoch(st_.epoch);
    if (n == 0) {
      // Nothing would be trained: no metric may be reported as if it had, no best.pt written.
      throw std::invalid_argument(fmt::format(
          "the training data gives no batch in epoch {}: with train.batch_size = {} (and the "
          "task's own sizes, such as data.bptt) there is nothing to train on; nothing was "
          "trained, reported or saved (use smaller sizes or more data)",
          st_.epoch + 1, o_.batch_size));
    }
    if (resumed_mid_epoch_) {
      task_.load_state(task_state_);  // after begin_epoch, so the carried state wins
      resumed_mid_epoch_ = false;
    } else {
      st_.batch = 0;
      st_.loss_sum = 0;
      st_.loss_count = 0;
    }
    progress_.start_epoch(st_.epoch, n, st_.batch);
    return n;
  }

  /// The first process owns the run dir: the lock, leftover temp files, the overwrite rule, the
  /// resolved config. Returns whether to resume, as the first process found it.
  bool prepare_run_dir() {
    bool resume = run_.resume;
    strategy_->on_first([&] {
      lock_.emplace(run_.run_dir);
      const int stale = remove_stale_temp_files(run_.run_dir);
      if (stale > 0 && !quiet_) {
        fmt::print(stderr, "removed {} unfinished temp file(s) of an interrupted write in {}\n",
                   stale, run_.run_dir);
      }
      const bool has_last = fs::exists(last_path_), has_best = fs::exists(best_path_);
      if (run_.auto_resume && has_last) resume = true;
      if (resume && !has_last) {
        throw RunDirError(
            fmt::format("--resume: {} holds no last.pt to continue from{}", run_.run_dir,
                        has_best ? " (only best.pt)" : "; start a new run without --resume"));
      }
      if (!resume) {
        if (!run_.auto_resume) check_run_dir(run_);
        for (const auto& p : {last_path_, best_path_, metrics_.path()}) fs::remove(p);
        write_text_atomically((fs::path(run_.run_dir) / "config.toml").string(), config_text_);
      }
    });
    return strategy_->from_first(resume ? "1" : "0") == "1";
  }

  void resume_from_last() {
    // The first process reads the file and hands its bytes to the others: the run dir need not
    // be shared.
    std::string bytes;
    strategy_->on_first([&] { bytes = read_checkpoint_file(last_path_); });
    bytes = strategy_->from_first(bytes);
    auto a =
        open_checkpoint_bytes(bytes, last_path_, task_.app_name(), task_.architecture(), device_);
    check_resumed_config(get_string(a, "config"));
    torch::serialize::InputArchive m, opt;
    a.read("model", m);
    a.read("optimizer", opt);
    a.read("task", task_state_);
    model_.load(m);
    model_.to(device_);
    check_finite(model_, last_path_);
    optimizer_->load(opt);
    st_.load(a);
    scheduler_.load(a);
    set_lr(*optimizer_, get_double(a, "train/lr"));
    load_scaler(a);
    load_rng(a);
    resumed_mid_epoch_ = true;
    if (strategy_->writes()) metrics_.trim(st_.epoch);
    if (!quiet_) {
      fmt::print(stderr, "resuming {} at epoch {}, batch {} (step {})\n", last_path_, st_.epoch + 1,
                 st_.batch, st_.step);
    }
  }

  /// A resumed run continues with the config it started with: a --set or a config edited since
  /// is refused, never ignored, except for the keys that only say how long or how loudly to go
  /// on (train.epochs, train.max_minutes, train.log_every) and train.precision with the loss
  /// scaling keys (weights and optimizer state are fp32 whatever they are), which are applied
  /// and recorded in config.toml.
  /// run_dir/config.toml itself must still be what the run trained with, but for those keys.
  void check_resumed_config(const std::string& saved) {
    static const std::set<std::string> kMayChange = {"train.epochs",
                                                     "train.max_minutes",
                                                     "train.log_every",
                                                     "train.precision",
                                                     "train.grad_scaler",
                                                     "train.grad_scaler_init",
                                                     "train.grad_scaler_interval"};
    const std::string recorded = (fs::path(run_.run_dir) / "config.toml").string();
    bool record_differs = false;
    if (strategy_->writes() && fs::exists(recorded)) {
      std::string text;
      try {
        text = data::read_text(recorded, data::Encoding::kUtf8, true);
        record_differs = static_cast<bool>(first_difference(text, config_text_));
        // Only in the keys a resume may change: what a resume killed before its first
        // checkpoint leaves (it records the new config at once, the checkpoint comes later).
        if (const auto d = first_difference(saved, text, kMayChange)) {
          throw RunDirError(fmt::format(
              "--resume: {} was edited since {} was written (key {}: {} in the checkpoint, {} in "
              "the file); a run's config.toml records what it trains with: restore it, and give "
              "changes with --config and --set",
              recorded, last_path_, d->key, d->a, d->b));
        }
      } catch (const toml::parse_error& e) {
        throw RunDirError(fmt::format("--resume: {} was edited and is not TOML any more ({})",
                                      recorded, e.description()));
      }
    }
    if (const auto d = first_difference(saved, config_text_, kMayChange)) {
      throw RunDirError(fmt::format(
          "--resume: the config differs from the run's at key {} ({} in {}, {} now); a resumed "
          "run continues with the config it started with (only train.epochs, train.max_minutes, "
          "train.log_every, train.precision and the train.grad_scaler keys may change): drop "
          "the change, or start a new run with --overwrite or another --run-dir",
          d->key, d->a, last_path_, d->b));
    }
    if (strategy_->writes() && (record_differs || first_difference(saved, config_text_))) {
      write_text_atomically(recorded, config_text_);
    }
  }

  /// Everything to continue from (next_epoch, next_batch). Every process fills its archive (the
  /// task's sharded state and the random streams are gathered); the first one writes it.
  void save(const std::string& path, int64_t next_epoch, int64_t next_batch) {
    LoopState at = st_;
    at.epoch = next_epoch;
    at.batch = next_batch;
    torch::serialize::OutputArchive a, m, opt, t;
    model_.save(m);
    optimizer_->save(opt);
    task_.save_state(t);
    for (const auto& [name, slice] : task_.sharded_state()) {
      t.write(name, torch::cat(strategy_->gather(slice.cpu()), 0), /*is_buffer=*/true);
    }
    a.write("model", m);
    a.write("optimizer", opt);
    a.write("task", t);
    put_string(a, "config", config_text_);
    at.save(a);
    scheduler_.save(a);
    put_double(a, "train/lr", get_lr(*optimizer_));
    put_int(a, "train/world_size", strategy_->shard().world);
    if (scaler_) {
      put_double(a, "scaler/scale", scaler_->scale());
      put_int(a, "scaler/growth_tracker", scaler_->growth_tracker());
    }
    save_rng(a);
    strategy_->on_first([&] { write_checkpoint(path, task_.app_name(), task_.architecture(), a); });
  }

  /// The loss scale where the checkpoint left it; a checkpoint of a run without loss scaling
  /// (fp32 or bf16 resumed as fp16) starts at train.grad_scaler_init.
  void load_scaler(torch::serialize::InputArchive& a) {
    torch::Tensor scale, tracker;
    if (scaler_ && a.try_read("scaler/scale", scale, true) &&
        a.try_read("scaler/growth_tracker", tracker, true)) {
      scaler_->load(scale.item<double>(), tracker.item<int64_t>());
    }
  }

  /// The random streams every process keeps: CPU, and CUDA's when present, one per process, so
  /// that each resumes its own; a process the checkpoint has no stream for keeps the one
  /// setup_runtime seeded.
  void save_rng(torch::serialize::OutputArchive& a) {
    const auto cpu = strategy_->gather(at::detail::getDefaultCPUGenerator().get_state());
    put_int(a, "rng/world", static_cast<int64_t>(cpu.size()));
    for (size_t r = 0; r < cpu.size(); ++r) a.write("rng/cpu/" + std::to_string(r), cpu[r], true);
    if (device_.is_cuda()) {
      const auto cuda =
          strategy_->gather(cuda_generator(device_.index() < 0 ? 0 : device_.index()).get_state());
      for (size_t r = 0; r < cuda.size(); ++r)
        a.write("rng/cuda/" + std::to_string(r), cuda[r], true);
    }
  }
  void load_rng(torch::serialize::InputArchive& a) {
    const int rank = strategy_->shard().rank;
    const std::string r = std::to_string(rank);
    torch::Tensor state;
    if (a.try_read("rng/cpu/" + r, state, true) ||
        (rank == 0 && a.try_read("rng/cpu", state, true))) {
      // The default generator is handed out const; its state is what torch::manual_seed sets.
      auto gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(state.cpu());
    }
    if (device_.is_cuda() && a.try_read("rng/cuda/" + r, state, true)) {
      auto gen = cuda_generator(device_.index() < 0 ? 0 : device_.index());
      gen.set_state(state.cpu());
    }
  }

  /// One optimizer step on batch st_.batch; the scheduler says what comes next.
  Scheduler::Next step(int64_t n) {
    const Position at{st_.epoch, st_.batch, n, st_.step, steps_this_run_};
    if (const double lr = scheduler_.rate_before_step(at); lr >= 0) set_lr(*optimizer_, lr);
    model_.train();
    optimizer_->zero_grad();
    strategy_->set_loss_scale(scaler_ ? scaler_->scale() : 1.0);
    const StepReport r = strategy_->forward_backward(
        task_, st_.batch, [this] { return scheduler_.out_of_time(elapsed()); }, params_);
    step_signal_ = r.signal;
    // Where the last good checkpoint is matters only to a diverged step's message: no file
    // system call on the others.
    const Scheduler::Next next =
        scheduler_.after_step(r, at, r.nonfinite ? kept_checkpoint() : std::string());
    // Unscaled before clipping, which must see the true gradients. An overflow is the same on
    // every process (the gradients are averaged first), so all skip the step together.
    const bool overflow = scaler_ && scaler_->unscale_(params_);
    if (!overflow) {
      if (o_.clip_value > 0) torch::nn::utils::clip_grad_value_(params_, o_.clip_value);
      if (o_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params_, o_.clip_norm);
      optimizer_->step();
    }
    if (scaler_) {
      const double scale = scaler_->scale();
      scaler_->update(overflow);
      if (overflow) {
        ++r_.skipped_steps;
        progress_.note(
            fmt::format("step {}: the gradients overflowed at loss scale {:g}; the "
                        "step is skipped and the scale lowered to {:g}",
                        st_.step + 1, scale, scaler_->scale()));
        // Gradients that overflow even scaled down this far are not finite at any scale: every
        // later step would be skipped too, and the run would go on training nothing.
        if (scaler_->scale() < kMinLossScale) {
          throw TrainingDiverged(fmt::format(
              "training diverged: the gradients are not finite at any loss scale (step {}, "
              "epoch {}, batch {}: still inf or NaN at scale {:g}, after {} skipped steps); {}; "
              "try clip_norm or a lower learning_rate",
              st_.step + 1, st_.epoch + 1, st_.batch + 1, scale, r_.skipped_steps,
              kept_checkpoint().empty() ? "no checkpoint was written before it"
                                        : "the last good checkpoint is kept in " + run_.run_dir));
        }
      }
    }
    ++st_.step;
    ++steps_this_run_;
    st_.loss_sum += r.loss_sum;
    st_.loss_count += r.count;
    progress_.step(st_.step, r.loss_sum / static_cast<double>(std::max<int64_t>(r.count, 1)),
                   r.count);
    return next;
  }

  /// The run dir, where a checkpoint was written before; empty when none was.
  std::string kept_checkpoint() const {
    return fs::exists(last_path_) || fs::exists(best_path_) ? run_.run_dir : "";
  }

  /// train.precision, checked against the device before the first step, and the loss scaling
  /// it asks for (train.grad_scaler).
  void set_precision() {
    precision_ = parse_precision(o_.precision);
    const auto type = device_.type();
    const AutocastGuard check(precision_, type);  // fp16 on a CPU: a ValueError saying so
    strategy_->set_precision(precision_, type);
    if (!quiet_) warn_if_bf16_is_slow(precision_, type, "train.precision = \"bf16\"");
    if (o_.grad_scaler == "dynamic" ||
        (o_.grad_scaler == "auto" && precision_ == Precision::kFP16)) {
      scaler_.emplace(GradScalerOptions()
                          .init_scale(o_.grad_scaler_init)
                          .growth_interval(o_.grad_scaler_interval));
    }
  }

  Metrics evaluate() {
    torch::NoGradGuard no_grad;
    const AutocastGuard autocast(precision_, device_.type());  // validation as it trains
    model_.eval();
    // In a data-parallel run a stop is acted on at the next step, when every process learns of
    // it: an evaluation abandoned on one process only would leave the others waiting.
    const PollStops poll(strategy_->shard().world == 1);
    return strategy_->agree_on(task_.evaluate());
  }

  /// max_minutes ran out inside an epoch. The epoch is only paused: the best checkpoint, the
  /// schedule, early stopping and metrics.csv see whole epochs alone, so that a run trained in
  /// pieces is the run trained at once. The evaluation is a report, nothing more.
  FitResult pause_mid_epoch(int64_t n) {
    st_.elapsed = elapsed();
    save(last_path_, st_.epoch, st_.batch);  // before evaluating: a stop there loses nothing
    r_.steps = st_.step;
    r_.epochs_done = st_.epoch;
    if (!quiet_) {
      fmt::print(stderr,
                 "stopping: max_minutes = {} reached at epoch {}, batch {}/{}; wrote {} (continue "
                 "with --resume)\n",
                 o_.max_minutes, st_.epoch + 1, st_.batch, n, last_path_);
    }
    try {
      r_.last = evaluate();
    } catch (const Interrupted& e) {
      return stopped(e.signal, "");
    }
    if (!quiet_) {
      fmt::print(stderr,
                 "epoch {} so far ({} of {} batches): {}; a report only, not a candidate for "
                 "best.pt nor a metrics.csv row\n",
                 st_.epoch + 1, st_.batch, n, metrics_text(r_.last));
    }
    return r_;
  }

  /// Best checkpoint, schedule, metrics row, last checkpoint; returns whether to stop.
  bool end_epoch(const Metrics& m, bool time_up) {
    r_.last = m;
    if (scheduler_.is_new_best(m)) {
      r_.best = m;
      save(best_path_, st_.epoch + 1, 0);
    }
    const Scheduler::EpochEnd e =
        scheduler_.after_epoch(st_.epoch, m, get_lr(*optimizer_), time_up);
    set_lr(*optimizer_, e.rate);
    const double train_loss =
        st_.loss_count ? st_.loss_sum / static_cast<double>(st_.loss_count) : NAN;
    if (strategy_->writes())
      metrics_.append(st_.epoch + 1, st_.step, train_loss, m, e.rate, to_string(precision_),
                      elapsed());
    if (!quiet_) {
      fmt::print(stderr, "epoch {}: train loss {:.4f}, {} (best {}: {:.4f}), lr {:.3g}, {}\n",
                 st_.epoch + 1, train_loss, metrics_text(m), m.main, scheduler_.best(), e.rate,
                 hms(elapsed()));
    }
    st_.elapsed = elapsed();
    save(last_path_, st_.epoch + 1, 0);
    r_.epochs_done = st_.epoch + 1;
    r_.early_stopped = scheduler_.stopped_early();
    if (e.stop && !quiet_) fmt::print(stderr, "{}\n", e.why);
    return e.stop;
  }

  FitResult stopped(int sig, const char* why) {
    if (!quiet_) {
      fmt::print(stderr, "{}: stopped at step {}; wrote {} (continue with --resume)\n",
                 sig ? signal_name(sig) : why, st_.step, last_path_);
    }
    r_.interrupted = true;
    r_.signal = sig;
    r_.steps = st_.step;
    r_.epochs_done = st_.epoch;
    return r_;
  }

  double elapsed() const {
    return elapsed_before_ + std::chrono::duration<double>(Clock::now() - t_start_).count();
  }

  Task& task_;
  const TrainOptions& o_;
  const RunOptions& run_;
  const std::string& config_text_;
  std::unique_ptr<StepStrategy> strategy_;
  const bool quiet_;
  const std::string last_path_, best_path_;
  MetricsLog metrics_;
  StopGuard signals_;
  std::optional<RunDirLock> lock_;
  torch::nn::Module& model_;
  const torch::Device device_;
  const std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  Scheduler scheduler_;
  Progress progress_;
  LoopState st_;
  FitResult r_;
  torch::serialize::InputArchive task_state_;
  bool resumed_mid_epoch_ = false;
  int64_t steps_this_run_ = 0;
  int step_signal_ = 0;  ///< the signal the last step's report carried
  Clock::time_point t_start_ = Clock::now();
  double elapsed_before_ = 0;
  Precision precision_ = Precision::kFP32;
  std::optional<GradScaler> scaler_;  // train.grad_scaler
};

}  // namespace

FitResult fit(Task& task, const TrainOptions& o, const RunOptions& run,
              const std::string& config_text, std::unique_ptr<StepStrategy> strategy) {
  return FitLoop(task, o, run, config_text, std::move(strategy)).run();
}

FitResult fit(Task& task, const TrainOptions& o, const RunOptions& run,
              const std::string& config_text) {
  return fit(task, o, run, config_text, make_step_strategy());
}

// What save() above wrote, for the apps that load a run to evaluate or predict.
SavedRun open_saved_run(const std::string& path, const std::string& app) {
  auto a = open_checkpoint(path, app, "");
  SavedRun run{ConfigReader::from_string(get_string(a, "config"), path + "#config"), {}, {}};
  run.config.load_plugins("model");  // none without trust_checkpoint_plugins(true)
  a.read("model", run.model);
  a.read("task", run.task);
  return run;
}

}  // namespace rnnkit::train

#include "train.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/core.h>
#include <torch/cuda.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim.h>

#include <rnnkit/data/batching.h>

#include "checkpoint.h"

namespace rnnkit::app {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

TrainOptions TrainOptions::read(ConfigReader& c, const std::string& section, const TrainOptions& defaults) {
  TrainOptions o = defaults;
  o.epochs = c.get_int(section, "epochs", o.epochs, defaults.epochs == 0 ? 0 : 1);
  o.max_minutes = c.get_double(section, "max_minutes", o.max_minutes, 0, 1e6);
  o.batch_size = c.get_int(section, "batch_size", o.batch_size, 1);
  o.optimizer = c.get_choice(section, "optimizer", o.optimizer, {"sgd", "adam", "adamw"});
  o.learning_rate = c.get_double(section, "learning_rate", o.learning_rate, 1e-12, 1e3);
  o.momentum = c.get_double(section, "momentum", o.momentum, 0, 0.999999);
  o.weight_decay = c.get_double(section, "weight_decay", o.weight_decay, 0, 10);
  o.clip_norm = c.get_double(section, "clip_norm", o.clip_norm, 0, 1e9);
  o.clip_value = c.get_double(section, "clip_value", o.clip_value, 0, 1e9);
  o.schedule = c.get_choice(section, "schedule", o.schedule, {"none", "step", "plateau"});
  o.step_size = c.get_int(section, "step_size", o.step_size, 1);
  o.decay_start = c.get_int(section, "decay_start", o.decay_start, 0);
  o.gamma = c.get_double(section, "gamma", o.gamma, 1e-6, 1.0);
  o.plateau_patience = c.get_int(section, "plateau_patience", o.plateau_patience, 0);
  o.early_stopping = c.get_int(section, "early_stopping", o.early_stopping, 0);
  o.seed = c.get_int(section, "seed", o.seed, 0);
  o.log_every = c.get_int(section, "log_every", o.log_every, 1);
  return o;
}

torch::Device setup_runtime(const RunOptions& run, int64_t seed) {
  std::optional<torch::Device> device;
  try {
    device = torch::Device(run.device);
  } catch (const c10::Error&) {
    throw std::invalid_argument("--device: expected cpu, cuda or cuda:N, got '" + run.device + "'");
  }
  if (device->is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw std::invalid_argument("--device " + run.device +
                                  ": CUDA is not available (a CPU-only LibTorch, or no GPU "
                                  "visible); use --device cpu");
    }
    const auto n = static_cast<int64_t>(torch::cuda::device_count());
    if (device->has_index() && device->index() >= n) {
      throw std::invalid_argument("--device " + run.device + ": only " + std::to_string(n) +
                                  " CUDA device(s) present");
    }
  } else if (!device->is_cpu()) {
    throw std::invalid_argument("--device: expected cpu, cuda or cuda:N, got '" + run.device + "'");
  }
  const int threads =
      run.threads > 0 ? run.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(threads, 1));
  torch::manual_seed(static_cast<uint64_t>(seed));
  if (device->is_cuda()) torch::cuda::manual_seed_all(static_cast<uint64_t>(seed));
  return *device;
}

double Metrics::get(const std::string& name) const {
  for (const auto& [k, v] : values) {
    if (k == name) return v;
  }
  throw std::out_of_range("no metric named " + name);
}

namespace {

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal = sig; }

/// SIGINT/SIGTERM finish the current step; a second signal kills as usual.
struct SignalGuard {
  using Handler = void (*)(int);
  Handler old_int, old_term;
  SignalGuard() {
    g_signal = 0;
    old_int = std::signal(SIGINT, on_signal);
    old_term = std::signal(SIGTERM, on_signal);
  }
  ~SignalGuard() {
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
  }
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> params,
                                                        const TrainOptions& o) {
  if (o.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(o.learning_rate).momentum(o.momentum)
                    .weight_decay(o.weight_decay));
  }
  if (o.optimizer == "adamw") {
    return std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay));
  }
  return std::make_unique<torch::optim::Adam>(
      params, torch::optim::AdamOptions(o.learning_rate).weight_decay(o.weight_decay));
}

double get_lr(torch::optim::Optimizer& opt) { return opt.param_groups().front().options().get_lr(); }
void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

/// The progress display: a bar redrawn in place on a terminal, periodic lines otherwise.
class Progress {
 public:
  Progress(bool quiet, int64_t log_every)
      : tty_(::isatty(STDERR_FILENO)), quiet_(quiet), log_every_(log_every) {}
  void start_epoch(int64_t epoch, int64_t total, int64_t first) {
    epoch_ = epoch, total_ = total, done_ = first, first_ = first, units_ = 0;
    t0_ = Clock::now();
  }
  void step(int64_t step, double loss, int64_t units) {
    ++done_;
    units_ += units;
    if (quiet_) return;
    const double s = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double rate = units_ / std::max(s, 1e-9);
    const double eta = s / std::max<int64_t>(done_ - first_, 1) * (total_ - done_);
    if (tty_) {
      const int width = 24, filled = static_cast<int>(width * done_ / std::max<int64_t>(total_, 1));
      fmt::print(stderr, "\repoch {} [{}{}] {}/{} loss {:.4f} {:.0f} units/s ETA {:.0f}s   ",
                 epoch_ + 1, std::string(filled, '='), std::string(width - filled, ' '), done_,
                 total_, loss, rate, eta);
    } else if (step % log_every_ == 0) {
      fmt::print(stderr, "epoch {} step {} batch {}/{} loss {:.4f} {:.0f} units/s ETA {:.0f}s\n",
                 epoch_ + 1, step, done_, total_, loss, rate, eta);
    }
  }
  void end_epoch() {
    if (tty_ && !quiet_) fmt::print(stderr, "\n");
  }

 private:
  bool tty_, quiet_;
  int64_t log_every_, epoch_ = 0, total_ = 0, done_ = 0, first_ = 0, units_ = 0;
  Clock::time_point t0_;
};

std::string metrics_text(const Metrics& m) {
  std::string s;
  for (const auto& [k, v] : m.values) s += fmt::format("{}{} {:.4f}", s.empty() ? "" : ", ", k, v);
  return s;
}

/// Appends a row per epoch to metrics.csv (header on creation), for plots and comparisons.
void append_metrics(const std::string& path, int64_t epoch, int64_t step, double train_loss,
                    const Metrics& m, double lr, double seconds) {
  const bool fresh = !fs::exists(path);
  std::ofstream out(path, std::ios::app);
  if (fresh) {
    out << "epoch,step,train_loss";
    for (const auto& kv : m.values) out << "," << kv.first;
    out << ",lr,seconds\n";
  }
  out << epoch << "," << step << "," << fmt::format("{:.6f}", train_loss);
  for (const auto& kv : m.values) out << "," << fmt::format("{:.6f}", kv.second);
  out << "," << lr << "," << fmt::format("{:.1f}", seconds) << "\n";
}

struct LoopState {
  int64_t epoch = 0, batch = 0, step = 0, bad_epochs = 0, plateau_bad = 0;
  double best = NAN, plateau_best = NAN, elapsed = 0;
  double loss_sum = 0;  // this epoch's training loss so far, so a resumed epoch reports it all
  int64_t loss_count = 0;
  std::string best_metrics;
};

bool better(double v, double ref, bool higher) {
  return std::isnan(ref) || (higher ? v > ref : v < ref);
}

}  // namespace

std::vector<std::vector<size_t>> plan_epoch(const std::vector<size_t>& lengths, const TrainOptions& options,
                                            int64_t epoch) {
  data::BatchPlanOptions o;
  o.batch_size = static_cast<size_t>(options.batch_size);
  o.seed = static_cast<uint64_t>(options.seed);
  return data::plan_batches(lengths, o, static_cast<uint64_t>(epoch));
}

FitResult fit(Task& task, const TrainOptions& o, const RunOptions& run,
              const std::string& config_text) {
  const bool rank0 = true;  // data-parallel training would set this from the process group
  fs::create_directories(run.run_dir);
  const std::string last_path = (fs::path(run.run_dir) / "last.pt").string();
  const std::string best_path = (fs::path(run.run_dir) / "best.pt").string();
  const std::string csv_path = (fs::path(run.run_dir) / "metrics.csv").string();

  torch::nn::Module& model = task.model();
  auto optimizer = make_optimizer(model.parameters(), o);
  LoopState st;
  const torch::Device device = model.parameters().front().device();

  auto save = [&](const std::string& path) {
    if (!rank0) return;
    write_checkpoint(path, task.app_name(), task.architecture(),
                     [&](torch::serialize::OutputArchive& a) {
                       torch::serialize::OutputArchive m, opt, t;
                       model.save(m);
                       optimizer->save(opt);
                       task.save_state(t);
                       a.write("model", m);
                       a.write("optimizer", opt);
                       a.write("task", t);
                       put_string(a, "config", config_text);
                       put_int(a, "train/epoch", st.epoch);
                       put_int(a, "train/batch", st.batch);
                       put_int(a, "train/step", st.step);
                       put_int(a, "train/bad_epochs", st.bad_epochs);
                       put_int(a, "train/plateau_bad", st.plateau_bad);
                       put_double(a, "train/best", st.best);
                       put_double(a, "train/plateau_best", st.plateau_best);
                       put_double(a, "train/elapsed", st.elapsed);
                       put_double(a, "train/loss_sum", st.loss_sum);
                       put_int(a, "train/loss_count", st.loss_count);
                       put_double(a, "train/lr", get_lr(*optimizer));
                       put_string(a, "train/best_metrics", st.best_metrics);
                       a.write("rng/cpu", at::detail::getDefaultCPUGenerator().get_state(), true);
                     });
  };

  bool resumed_mid_epoch = false;
  torch::serialize::InputArchive task_state;
  if (run.resume) {
    auto a = open_checkpoint(last_path, task.app_name(), task.architecture());
    torch::serialize::InputArchive m, opt;
    a.read("model", m);
    a.read("optimizer", opt);
    a.read("task", task_state);
    model.load(m);
    model.to(device);
    optimizer->load(opt);
    st.epoch = get_int(a, "train/epoch");
    st.batch = get_int(a, "train/batch");
    st.step = get_int(a, "train/step");
    st.bad_epochs = get_int(a, "train/bad_epochs");
    st.plateau_bad = get_int(a, "train/plateau_bad");
    st.best = get_double(a, "train/best");
    st.plateau_best = get_double(a, "train/plateau_best");
    st.elapsed = get_double(a, "train/elapsed");
    st.loss_sum = get_double(a, "train/loss_sum");
    st.loss_count = get_int(a, "train/loss_count");
    st.best_metrics = get_string(a, "train/best_metrics");
    set_lr(*optimizer, get_double(a, "train/lr"));
    torch::Tensor rng;
    a.read("rng/cpu", rng, true);
    // The default generator is handed out const; its state is what torch::manual_seed sets.
    auto gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(rng);
    resumed_mid_epoch = true;
    if (!run.quiet) {
      fmt::print(stderr, "resuming {} at epoch {}, batch {} (step {})\n", last_path, st.epoch + 1,
                 st.batch, st.step);
    }
  } else if (rank0) {
    write_text_atomically((fs::path(run.run_dir) / "config.toml").string(), config_text);
    fs::remove(csv_path);
  }

  SignalGuard signals;
  Progress progress(run.quiet, o.log_every);
  FitResult r;
  const auto t_start = Clock::now();
  const double elapsed_before = st.elapsed;
  auto elapsed = [&] {
    return elapsed_before + std::chrono::duration<double>(Clock::now() - t_start).count();
  };
  int64_t steps_this_run = 0;

  // A resumed run that had already stopped early stays stopped.
  const bool stopped_early = o.early_stopping > 0 && st.bad_epochs >= o.early_stopping;
  r.early_stopped = stopped_early;
  for (; !stopped_early && st.epoch < o.epochs; ++st.epoch) {
    const int64_t n = task.begin_epoch(st.epoch);
    if (resumed_mid_epoch) {
      task.load_state(task_state);  // after begin_epoch, so the carried state wins
      resumed_mid_epoch = false;
    } else {
      st.batch = 0;
      st.loss_sum = 0;
      st.loss_count = 0;
    }
    progress.start_epoch(st.epoch, n, st.batch);
    bool time_up = false;
    for (; st.batch < n && !time_up; ++st.batch) {
      model.train();
      const BatchLoss b = task.train_batch(st.batch);
      const double lv = b.loss.item<double>();
      if (!std::isfinite(lv)) {
        throw TrainingDiverged(fmt::format(
            "training diverged: the loss is {} at step {} (epoch {}, batch {}); the last good "
            "checkpoint is kept in {}{}",
            lv, st.step + 1, st.epoch + 1, st.batch + 1, run.run_dir,
            o.clip_norm == 0 ? "; try clip_norm or a lower learning_rate" : ""));
      }
      optimizer->zero_grad();
      b.loss.backward();
      // Data-parallel training would all-reduce the gradients here, before clipping.
      if (o.clip_value > 0) torch::nn::utils::clip_grad_value_(model.parameters(), o.clip_value);
      if (o.clip_norm > 0) torch::nn::utils::clip_grad_norm_(model.parameters(), o.clip_norm);
      optimizer->step();
      ++st.step;
      ++steps_this_run;
      st.loss_sum += lv * b.count;
      st.loss_count += b.count;
      progress.step(st.step, lv, b.count);
      if (g_signal != 0 || (run.max_steps > 0 && steps_this_run >= run.max_steps)) {
        ++st.batch;
        st.elapsed = elapsed();
        save(last_path);
        progress.end_epoch();
        if (!run.quiet) {
          fmt::print(stderr, "{}: stopped at step {}; wrote {} (continue with --resume)\n",
                     g_signal ? (g_signal == SIGINT ? "SIGINT" : "SIGTERM") : "max_steps",
                     st.step, last_path);
        }
        r.interrupted = true;
        r.steps = st.step;
        r.epochs_done = st.epoch;
        return r;
      }
      // The time budget is checked every step: an epoch can be long (a 1 MB corpus).
      time_up = o.max_minutes > 0 && elapsed() >= o.max_minutes * 60;
    }
    progress.end_epoch();

    torch::NoGradGuard no_grad;
    model.eval();
    const Metrics m = task.evaluate();
    r.last = m;
    const double value = m.get(m.main);
    if (better(value, st.best, m.higher_is_better)) {
      st.best = value;
      st.best_metrics = metrics_text(m);
      st.bad_epochs = 0;
      r.best = m;
      st.batch = 0;
      st.epoch += 1;  // a checkpoint records where to continue
      save(best_path);
      st.epoch -= 1;
    } else {
      ++st.bad_epochs;
    }
    if (o.schedule == "step" && st.epoch + 1 >= o.decay_start &&
        (st.epoch + 1) % o.step_size == 0) {
      set_lr(*optimizer, get_lr(*optimizer) * o.gamma);
    } else if (o.schedule == "plateau") {
      if (better(value, st.plateau_best, m.higher_is_better)) {
        st.plateau_best = value;
        st.plateau_bad = 0;
      } else if (++st.plateau_bad > o.plateau_patience) {
        set_lr(*optimizer, get_lr(*optimizer) * o.gamma);
        st.plateau_bad = 0;
      }
    }
    const double train_loss = st.loss_count ? st.loss_sum / st.loss_count : NAN;
    if (rank0) {
      append_metrics(csv_path, st.epoch + 1, st.step, train_loss, m, get_lr(*optimizer), elapsed());
    }
    if (!run.quiet) {
      fmt::print(stderr, "epoch {}: train loss {:.4f}, {} (best {}: {:.4f}), lr {:.3g}, {:.0f}s\n",
                 st.epoch + 1, train_loss, metrics_text(m), m.main, st.best, get_lr(*optimizer),
                 elapsed());
    }
    st.elapsed = elapsed();
    if (time_up && st.batch < n) {  // mid-epoch: --resume continues from this batch
      save(last_path);
      if (!run.quiet) fmt::print(stderr, "stopping: max_minutes = {} reached\n", o.max_minutes);
      r.epochs_done = st.epoch;
      break;
    }
    st.batch = 0;
    ++st.epoch;
    save(last_path);
    --st.epoch;
    r.epochs_done = st.epoch + 1;
    if (o.early_stopping > 0 && st.bad_epochs >= o.early_stopping) {
      r.early_stopped = true;
      if (!run.quiet) fmt::print(stderr, "early stopping: {} epochs without improvement\n", st.bad_epochs);
      break;
    }
    if (time_up) {
      if (!run.quiet) fmt::print(stderr, "stopping: max_minutes = {} reached\n", o.max_minutes);
      break;
    }
  }
  r.steps = st.step;
  if (r.last.values.empty()) {  // resumed a finished run: nothing trained, still report it
    torch::NoGradGuard no_grad;
    model.eval();
    r.last = task.evaluate();
    if (r.best.values.empty()) r.best = r.last;
  }
  return r;
}

}  // namespace rnnkit::app

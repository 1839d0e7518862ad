#include <rnnkit/train/train.h>

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <torch/cuda.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim.h>

#include <rnnkit/compat.h>
#include <rnnkit/data/batching.h>
#include <rnnkit/data/text.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/json.h>
#include <rnnkit/train/signals.h>
#include <rnnkit/train/system.h>

namespace rnnkit::app {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

TrainOptions TrainOptions::read(ConfigReader& c, const std::string& section,
                                const TrainOptions& defaults) {
  TrainOptions o = defaults;
  o.epochs = c.get_int(section, "epochs", o.epochs, defaults.epochs == 0 ? 0 : 1, 1000000);
  o.max_minutes = c.get_double(section, "max_minutes", o.max_minutes, 0, 1e6);
  o.batch_size = c.get_int(section, "batch_size", o.batch_size, 1, 65536);
  o.optimizer = c.get_choice(section, "optimizer", o.optimizer, {"sgd", "adam", "adamw"});
  o.learning_rate = c.get_double(section, "learning_rate", o.learning_rate, 1e-12, 1e3);
  o.momentum = c.get_double(section, "momentum", o.momentum, 0, 0.999999);
  o.weight_decay = c.get_double(section, "weight_decay", o.weight_decay, 0, 10);
  o.clip_norm = c.get_double(section, "clip_norm", o.clip_norm, 0, 1e9);
  o.clip_value = c.get_double(section, "clip_value", o.clip_value, 0, 1e9);
  o.schedule = c.get_choice(section, "schedule", o.schedule, {"none", "step", "plateau", "cosine"});
  o.step_size = c.get_int(section, "step_size", o.step_size, 1, 1000000000);
  o.decay_start = c.get_int(section, "decay_start", o.decay_start, 0);
  o.gamma = c.get_double(section, "gamma", o.gamma, 1e-6, 1.0);
  o.plateau_patience = c.get_int(section, "plateau_patience", o.plateau_patience, 0);
  o.plateau_threshold = c.get_double(section, "plateau_threshold", o.plateau_threshold, 0, 0.5);
  o.min_lr = c.get_double(section, "min_lr", o.min_lr, 0, 1e3);
  if (o.min_lr > o.learning_rate) {
    throw ConfigError(
        fmt::format("{}: min_lr = {} is above learning_rate = {}; the cosine schedule "
                    "decays from learning_rate down to min_lr",
                    c.where(section, "min_lr"), o.min_lr, o.learning_rate));
  }
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
  const dist::Env env = run.distributed ? dist::Env::read() : dist::Env{};
  if (device->is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw std::invalid_argument("--device " + run.device +
                                  ": CUDA is not available (a CPU-only LibTorch, or no GPU "
                                  "visible); use --device cpu");
    }
    const auto n = static_cast<int64_t>(torch::cuda::device_count());
    // One process per GPU: torchrun's LOCAL_RANK picks it.
    if (!device->has_index() && env.present)
      device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
    if (device->has_index() && device->index() >= n) {
      throw std::invalid_argument("--device " + device->str() + ": only " + std::to_string(n) +
                                  " CUDA device(s) present");
    }
  } else if (!device->is_cpu()) {
    throw std::invalid_argument("--device: expected cpu, cuda or cuda:N, got '" + run.device + "'");
  }
  at::set_num_threads(resolve_threads(run.threads));
  if (run.distributed) dist::init_from_env(run.dist, *device);
  const auto s = static_cast<uint64_t>(seed + dist::rank());
  torch::manual_seed(s);
  if (device->is_cuda()) torch::cuda::manual_seed_all(s);
  return *device;
}

double Metrics::get(const std::string& name) const {
  for (const auto& [k, v] : values) {
    if (k == name) return v;
  }
  throw std::out_of_range("no metric named " + name);
}

bool improves_on(double value, double best, bool higher, double threshold) {
  if (std::isnan(best)) return true;
  return higher ? value > best * (1 + threshold) : value < best * (1 - threshold);
}

double cosine_learning_rate(double base, double min, double done) {
  const double f = std::clamp(done, 0.0, 1.0);
  return min + 0.5 * (base - min) * (1.0 + std::cos(M_PI * f));
}

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

/// h:mm:ss, as tqdm shows elapsed time and ETA.
std::string hms(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

/// The progress display: a bar redrawn in place on a terminal, periodic lines otherwise.
class Progress {
 public:
  Progress(bool quiet, int64_t log_every, std::string unit)
      : tty_(::isatty(STDERR_FILENO)),
        quiet_(quiet),
        log_every_(log_every),
        unit_(std::move(unit)) {}
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
    const double pct = 100.0 * done_ / std::max<int64_t>(total_, 1);
    if (tty_) {
      const int width = 24, filled = static_cast<int>(width * done_ / std::max<int64_t>(total_, 1));
      fmt::print(stderr, "\repoch {} {:3.0f}%|{}{}| {}/{} [{}<{}, {:.0f} {}/s] loss {:.4f}   ",
                 epoch_ + 1, pct, std::string(filled, '#'), std::string(width - filled, ' '), done_,
                 total_, hms(s), hms(eta), rate, unit_, loss);
    } else if (step % log_every_ == 0) {
      fmt::print(
          stderr,
          "epoch {} step {} batch {}/{} ({:.0f}%) loss {:.4f} {:.0f} {}/s elapsed {} ETA {}\n",
          epoch_ + 1, step, done_, total_, pct, loss, rate, unit_, hms(s), hms(eta));
    }
  }
  void end_epoch() {
    if (tty_ && !quiet_) fmt::print(stderr, "\n");
  }

 private:
  bool tty_, quiet_;
  int64_t log_every_;
  std::string unit_;
  int64_t epoch_ = 0, total_ = 0, done_ = 0, first_ = 0, units_ = 0;
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
  OutputFile out(path, /*append=*/true);
  if (fresh) {
    out << "epoch,step,train_loss";
    for (const auto& kv : m.values) out << "," << kv.first;
    out << ",lr,seconds\n";
  }
  out << epoch << "," << step << "," << fmt::format("{:.6f}", train_loss);
  for (const auto& kv : m.values) out << "," << fmt::format("{:.6f}", kv.second);
  out << "," << lr << "," << fmt::format("{:.1f}", seconds) << "\n";
  out.close();
}

/// Drops the rows of metrics.csv after epoch `epochs_done` (1-based epochs in column 1).
void trim_metrics(const std::string& path, int64_t epochs_done) {
  std::ifstream in(path);
  if (!in) return;
  std::string text, line;
  bool header = true, dropped = false;
  while (std::getline(in, line)) {
    if (!header && std::strtoll(line.c_str(), nullptr, 10) > epochs_done) {
      dropped = true;
      continue;
    }
    header = false;
    text += line + "\n";
  }
  if (dropped) write_text_atomically(path, text);
}

/// The learning-rate schedule: none, step decay (every step_size epochs once decay_start are
/// done), reduce-on-plateau, or cosine annealing by step. LibTorch 1.13 has no plateau or cosine
/// scheduler, and its schedulers cannot be checkpointed; this one's state is two numbers.
class Scheduler {
 public:
  explicit Scheduler(const TrainOptions& o) : o_(o) {}
  /// Whether the rate is set before every step (cosine) rather than after each epoch.
  bool by_step() const { return o_.schedule == "cosine"; }
  /// Cosine annealing (Loshchilov & Hutter 2017, without restarts) from learning_rate at the
  /// start to min_lr at the end of the last epoch, by position: batch `batch` of `n` in epoch
  /// `epoch` (0-based). A function of the position alone, so a resumed run needs no state.
  double at(int64_t epoch, int64_t batch, int64_t n) const {
    const double done =
        (static_cast<double>(epoch) +
         static_cast<double>(batch) / static_cast<double>(std::max<int64_t>(n, 1))) /
        static_cast<double>(std::max<int64_t>(o_.epochs, 1));
    return cosine_learning_rate(o_.learning_rate, o_.min_lr, done);
  }
  /// The learning rate after epoch `epoch` (0-based) ended with validation value `value`.
  double after_epoch(int64_t epoch, double value, bool higher, double lr) {
    if (o_.schedule == "cosine") {
      lr = at(epoch + 1, 0, 1);  // where the next epoch starts, as metrics.csv reports it
    } else if (o_.schedule == "step") {
      if (epoch + 1 >= o_.decay_start && (epoch + 1) % o_.step_size == 0) lr *= o_.gamma;
    } else if (o_.schedule == "plateau") {
      // As ReduceLROnPlateau: only a gain past the threshold resets the count and becomes the
      // reference, so small gains count as none until together they pass it.
      if (improves_on(value, best_, higher, o_.plateau_threshold)) {
        best_ = value;
        bad_ = 0;
      } else if (++bad_ > o_.plateau_patience) {
        lr *= o_.gamma;
        bad_ = 0;
      }
    }
    return lr;
  }
  void save(torch::serialize::OutputArchive& a) const {
    put_int(a, "train/plateau_bad", bad_);
    put_double(a, "train/plateau_best", best_);
  }
  void load(torch::serialize::InputArchive& a) {
    bad_ = get_int(a, "train/plateau_bad");
    best_ = get_double(a, "train/plateau_best");
  }

 private:
  const TrainOptions& o_;
  double best_ = NAN;
  int64_t bad_ = 0;
};

/// Where the loop is, and what it has seen: everything a resumed run needs besides the model,
/// the optimizer, the task and the random streams.
struct LoopState {
  int64_t epoch = 0, batch = 0, step = 0, bad_epochs = 0;
  double best = NAN, elapsed = 0;
  double loss_sum = 0;  // this epoch's training loss so far, so a resumed epoch reports it all
  int64_t loss_count = 0;
  std::string best_metrics;

  void save(torch::serialize::OutputArchive& a) const {
    put_int(a, "train/epoch", epoch);
    put_int(a, "train/batch", batch);
    put_int(a, "train/step", step);
    put_int(a, "train/bad_epochs", bad_epochs);
    put_double(a, "train/best", best);
    put_double(a, "train/elapsed", elapsed);
    put_double(a, "train/loss_sum", loss_sum);
    put_int(a, "train/loss_count", loss_count);
    put_string(a, "train/best_metrics", best_metrics);
  }
  void load(torch::serialize::InputArchive& a) {
    epoch = get_int(a, "train/epoch");
    batch = get_int(a, "train/batch");
    step = get_int(a, "train/step");
    bad_epochs = get_int(a, "train/bad_epochs");
    best = get_double(a, "train/best");
    elapsed = get_double(a, "train/elapsed");
    loss_sum = get_double(a, "train/loss_sum");
    loss_count = get_int(a, "train/loss_count");
    best_metrics = get_string(a, "train/best_metrics");
  }
};

/// What every rank learns after each forward pass: the global loss sum and unit count, and the
/// stop decisions (any rank's signal; rank 0's clock for max_minutes).
struct StepControl {
  double loss_sum = 0;
  int64_t count = 0;
  bool nonfinite = false, time_up = false;
  int signal = 0;
};

StepControl exchange(double loss_sum, int64_t count, bool time_up_here) {
  const int sig = stop_signal();
  StepControl c;
  if (!dist::enabled()) {
    c.loss_sum = loss_sum;
    c.count = count;
    c.nonfinite = !std::isfinite(loss_sum);
    c.time_up = time_up_here;
    c.signal = sig;
    return c;
  }
  const bool finite = std::isfinite(loss_sum);
  auto t = torch::tensor({finite ? loss_sum : 0.0, static_cast<double>(count), finite ? 0.0 : 1.0,
                          sig == SIGINT ? 1.0 : 0.0, sig != 0 && sig != SIGINT ? 1.0 : 0.0,
                          dist::is_rank0() && time_up_here ? 1.0 : 0.0},
                         torch::kDouble);
  dist::all_reduce_sum_(t);
  const auto v = t.accessor<double, 1>();
  c.nonfinite = v[2] > 0;
  c.loss_sum = c.nonfinite ? NAN : v[0];
  c.count = static_cast<int64_t>(std::llround(v[1]));
  c.signal = v[3] > 0 ? SIGINT : v[4] > 0 ? SIGTERM : 0;
  c.time_up = v[5] > 0;
  if (c.signal && !sig) set_stop_signal(c.signal);  // every rank reports the same exit status
  return c;
}

/// Rank 0's metrics, on every rank: decisions (best, plateau, early stopping) are the same.
Metrics agree_on(Metrics m) {
  if (!dist::enabled()) return m;
  std::vector<double> v;
  for (const auto& kv : m.values) v.push_back(kv.second);
  std::vector<torch::Tensor> t{torch::tensor(v, torch::kDouble)};
  dist::broadcast_(t, 0);
  for (size_t i = 0; i < v.size(); ++i)
    m.values[i].second = t[0][static_cast<int64_t>(i)].item<double>();
  return m;
}

/// The random streams every rank keeps: CPU, and CUDA's when present. Gathered to rank 0, so
/// that each rank resumes its own stream; a rank the checkpoint has no stream for keeps the one
/// setup_runtime seeded.
void save_rng(torch::serialize::OutputArchive& a, const torch::Device& device) {
  const auto cpu = dist::all_gather(at::detail::getDefaultCPUGenerator().get_state());
  put_int(a, "rng/world", static_cast<int64_t>(cpu.size()));
  for (size_t r = 0; r < cpu.size(); ++r) a.write("rng/cpu/" + std::to_string(r), cpu[r], true);
  if (device.is_cuda()) {
    const auto cuda =
        dist::all_gather(cuda_generator(device.index() < 0 ? 0 : device.index()).get_state());
    for (size_t r = 0; r < cuda.size(); ++r)
      a.write("rng/cuda/" + std::to_string(r), cuda[r], true);
  }
}

void load_rng(torch::serialize::InputArchive& a, const torch::Device& device) {
  const std::string r = std::to_string(dist::rank());
  torch::Tensor state;
  if (a.try_read("rng/cpu/" + r, state, true) ||
      (dist::rank() == 0 && a.try_read("rng/cpu", state, true))) {
    // The default generator is handed out const; its state is what torch::manual_seed sets.
    auto gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(state.cpu());
  }
  if (device.is_cuda() && a.try_read("rng/cuda/" + r, state, true)) {
    auto gen = cuda_generator(device.index() < 0 ? 0 : device.index());
    gen.set_state(state.cpu());
  }
}

/// A TOML table naming each data file of a config ([data] strings and string arrays that are
/// regular files) with its size and CRC-32.
std::string data_fingerprints(const std::string& config_text) {
  const auto table = toml::parse(config_text);
  const auto* data = table["data"].as_table();
  if (!data) return "";
  std::string out = "\n[rnnkit_data_files]\n";
  auto add = [&](const std::string& key, const std::string& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return;
    std::ifstream in(path, std::ios::binary);
    std::vector<char> buf(1 << 20);
    uLong crc = ::crc32(0L, Z_NULL, 0);
    uint64_t size = 0;
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
      crc =
          ::crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(in.gcount()));
      size += static_cast<uint64_t>(in.gcount());
    }
    out += fmt::format("\"data.{}\" = \"{} bytes, crc32 {:08x}\"\n", key, size,
                       static_cast<uint32_t>(crc));
  };
  for (const auto& [k, v] : *data) {
    const std::string key(k.str());
    if (const auto str = v.value_exact<std::string>()) add(key, *str);
    if (const auto* arr = v.as_array()) {
      size_t i = 0;
      for (const auto& item : *arr) {
        if (const auto str = item.value_exact<std::string>()) {
          add(key + "[" + std::to_string(i) + "]", *str);
        }
        ++i;
      }
    }
  }
  return out;
}

}  // namespace

std::vector<std::vector<size_t>> plan_epoch(const std::vector<size_t>& lengths,
                                            const TrainOptions& options, int64_t epoch) {
  data::BatchPlanOptions o;
  o.batch_size = static_cast<size_t>(options.batch_size);
  o.seed = static_cast<uint64_t>(options.seed);
  o.rank = static_cast<size_t>(dist::rank());
  o.world = static_cast<size_t>(dist::world_size());
  return data::plan_batches(lengths, o, static_cast<uint64_t>(epoch));
}

std::optional<std::string> test_checkpoint(const RunOptions& run, const FitResult& r,
                                           const std::string& test_path) {
  if (test_path.empty() || r.interrupted || !dist::is_rank0()) return std::nullopt;
  const auto best = (fs::path(run.run_dir) / "best.pt").string();
  if (fs::exists(best)) return best;
  if (!run.quiet) {
    fmt::print(stderr,
               "test: not scored, no epoch has ended yet ({} is written at the end of "
               "the first; --resume the run)\n",
               best);
  }
  return std::nullopt;
}

void report_test(const RunOptions& run, const Metrics& test) {
  if (!dist::is_rank0() || test.values.empty()) return;
  Json j = Json::object();
  for (const auto& [k, v] : test.values) j[k] = v;
  fmt::print(stderr, "test (best checkpoint): {}\n", metrics_text(test));
  write_text_atomically((fs::path(run.run_dir) / "test.json").string(), json_line(j) + "\n");
}

void check_run_dir(const RunOptions& run) {
  if (run.resume || run.overwrite || run.auto_resume) return;
  const bool has_last = fs::exists(fs::path(run.run_dir) / "last.pt");
  const bool has_best = fs::exists(fs::path(run.run_dir) / "best.pt");
  if (!has_last && !has_best) return;
  throw RunDirError(fmt::format(
      "{} already holds a run ({}); continue it with --resume, or start again with --overwrite "
      "(which replaces its checkpoints and metrics), or give this run another --run-dir",
      run.run_dir,
      has_last && has_best ? "last.pt and best.pt"
      : has_last           ? "last.pt"
                           : "best.pt"));
}

namespace {

/// fit(), as the state it keeps and the phases it goes through.
class FitLoop {
 public:
  FitLoop(Task& task, const TrainOptions& o, const RunOptions& run, const std::string& config_text)
      : task_(task),
        o_(o),
        run_(run),
        config_text_(config_text),
        rank0_(dist::is_rank0()),
        quiet_(run.quiet || !rank0_),
        world_(dist::world_size()),
        last_path_((fs::path(run.run_dir) / "last.pt").string()),
        best_path_((fs::path(run.run_dir) / "best.pt").string()),
        csv_path_((fs::path(run.run_dir) / "metrics.csv").string()),
        model_(task.model()),
        device_(model_.parameters().front().device()),
        params_(model_.parameters()),
        optimizer_(make_optimizer(params_, o)),
        scheduler_(o),
        progress_(quiet_, o.log_every, task.unit()) {
    if (o.batch_size % world_ != 0) {
      throw std::invalid_argument(
          fmt::format("train.batch_size = {} is the global batch, shared by {} processes; it must "
                      "be a multiple of "
                      "the world size (each rank takes batch_size / world_size)",
                      o.batch_size, world_));
    }
  }

  FitResult run() {
    agree_on_config();
    if (prepare_run_dir()) resume_from_last();
    // One model on every rank: rank 0's initialisation (or the checkpoint it read).
    std::vector<torch::Tensor> state = model_.parameters();
    for (const auto& b : model_.buffers()) state.push_back(b);
    dist::broadcast_module(state);
    t_start_ = Clock::now();
    elapsed_before_ = st_.elapsed;

    // A resumed run that had already stopped early stays stopped.
    const bool stopped_early = o_.early_stopping > 0 && st_.bad_epochs >= o_.early_stopping;
    r_.early_stopped = stopped_early;
    for (; !stopped_early && st_.epoch < o_.epochs; ++st_.epoch) {
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
      bool time_up = false;
      for (; st_.batch < n && !time_up; ++st_.batch) {
        if (scheduler_.by_step()) set_lr(*optimizer_, scheduler_.at(st_.epoch, st_.batch, n));
        const StepControl c = step();
        if (c.signal != 0 || (run_.max_steps > 0 && steps_this_run_ >= run_.max_steps)) {
          st_.elapsed = elapsed();
          save(last_path_, st_.epoch, st_.batch + 1);
          progress_.end_epoch();
          return stopped(c.signal, "max_steps");
        }
        // The time budget is checked every step: an epoch can be long (a 1 MB corpus).
        time_up = c.time_up;
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
  /// Rank 0 owns the run dir: the lock, leftover temp files, the overwrite rule, the resolved
  /// config. Returns whether to resume, as rank 0 found it.
  bool prepare_run_dir() {
    bool resume = run_.resume;
    dist::on_rank0([&] {
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
        for (const auto& p : {last_path_, best_path_, csv_path_}) fs::remove(p);
        write_text_atomically((fs::path(run_.run_dir) / "config.toml").string(), config_text_);
      }
    });
    return dist::broadcast_string(resume ? "1" : "0") == "1";
  }

  void resume_from_last() {
    // Rank 0 reads the file and hands its bytes to the others: the run dir need not be shared.
    std::string bytes;
    dist::on_rank0([&] { bytes = read_checkpoint_file(last_path_); });
    bytes = dist::broadcast_string(bytes);
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
    load_rng(a, device_);
    resumed_mid_epoch_ = true;
    // A run killed between writing an epoch's metrics row and its last.pt would repeat the row:
    // keep the rows of the epochs this checkpoint has completed.
    if (rank0_) trim_metrics(csv_path_, st_.epoch);
    if (!quiet_) {
      fmt::print(stderr, "resuming {} at epoch {}, batch {} (step {})\n", last_path_, st_.epoch + 1,
                 st_.batch, st_.step);
    }
  }

  /// The ranks of a data-parallel run must train one model on one dataset: before the first
  /// collective that depends on the config, each compares its resolved config and the size and
  /// CRC-32 of each data file it names with rank 0's, and every rank stops with the first key
  /// or file that differs (not a Gloo abort, a hang, or a silently wrong model).
  void agree_on_config() {
    if (!dist::enabled()) return;
    const std::string mine = config_text_ + data_fingerprints(config_text_);
    const std::string rank0s = dist::broadcast_string(mine);
    std::string problem;
    if (const auto d = first_difference(rank0s, mine)) {
      problem = fmt::format(
          "rank {}'s config differs from rank 0's at {} ({} on rank 0, {} on rank {}); every "
          "rank of a data-parallel run must be given the same config, --set overrides and data",
          dist::rank(), d->key, d->a, d->b, dist::rank());
    }
    for (int r = 1; r < world_; ++r) {
      const std::string theirs = dist::broadcast_string(problem, r);
      if (!theirs.empty()) throw std::invalid_argument(theirs);
    }
  }

  /// A resumed run continues with the config it started with: a --set or a config edited since
  /// is refused, never ignored, except for the keys that only say how long or how loudly to go
  /// on (train.epochs, train.max_minutes, train.log_every), which are applied and recorded in
  /// config.toml. run_dir/config.toml itself must still be what the run trained with.
  void check_resumed_config(const std::string& saved) {
    static const std::set<std::string> kMayChange = {"train.epochs", "train.max_minutes",
                                                     "train.log_every"};
    const std::string recorded = (fs::path(run_.run_dir) / "config.toml").string();
    if (rank0_ && fs::exists(recorded)) {
      std::string text;
      try {
        text = data::read_text(recorded, data::Encoding::kUtf8, true);
        if (const auto d = first_difference(saved, text)) {
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
          "run continues with the config it started with (only train.epochs, train.max_minutes "
          "and train.log_every may change): drop the change, or start a new run with "
          "--overwrite or another --run-dir",
          d->key, d->a, last_path_, d->b));
    }
    if (rank0_ && first_difference(saved, config_text_)) {
      write_text_atomically(recorded, config_text_);
    }
  }

  /// Everything to continue from (next_epoch, next_batch). Every rank fills its archive (the
  /// task and the random streams gather from all ranks); rank 0 writes it.
  void save(const std::string& path, int64_t next_epoch, int64_t next_batch) {
    LoopState at = st_;
    at.epoch = next_epoch;
    at.batch = next_batch;
    torch::serialize::OutputArchive a, m, opt, t;
    model_.save(m);
    optimizer_->save(opt);
    task_.save_state(t);
    a.write("model", m);
    a.write("optimizer", opt);
    a.write("task", t);
    put_string(a, "config", config_text_);
    at.save(a);
    scheduler_.save(a);
    put_double(a, "train/lr", get_lr(*optimizer_));
    put_int(a, "train/world_size", world_);
    save_rng(a, device_);
    dist::on_rank0([&] { write_checkpoint(path, task_.app_name(), task_.architecture(), a); });
  }

  /// One optimizer step on batch st_.batch: this rank's share forward, the global loss and stop
  /// decisions exchanged, backward weighted by the share, gradients averaged, clipped, applied.
  StepControl step() {
    model_.train();
    const BatchLoss b = task_.train_batch(st_.batch);
    const double local_sum =
        b.count > 0 ? b.loss.item<double>() * static_cast<double>(b.count) : 0.0;
    const StepControl c =
        exchange(local_sum, b.count, o_.max_minutes > 0 && elapsed() >= o_.max_minutes * 60);
    if (c.nonfinite) {
      const bool any = fs::exists(last_path_) || fs::exists(best_path_);
      throw TrainingDiverged(
          fmt::format("training diverged: the loss is {} at step {} (epoch {}, batch {}); {}{}",
                      dist::enabled() ? "not finite"
                                      : fmt::format("{}", local_sum / static_cast<double>(b.count)),
                      st_.step + 1, st_.epoch + 1, st_.batch + 1,
                      any ? "the last good checkpoint is kept in " + run_.run_dir
                          : "no checkpoint was written before it",
                      o_.clip_norm == 0 ? "; try clip_norm or a lower learning_rate" : ""));
    }
    optimizer_->zero_grad();
    if (b.count > 0) {
      // Each rank's mean, weighted by its share of the global batch: after averaging over the
      // ranks the gradient is the global batch's mean, whatever the shares.
      const double share = static_cast<double>(world_) * static_cast<double>(b.count) /
                           static_cast<double>(std::max<int64_t>(c.count, 1));
      (share == 1.0 ? b.loss : b.loss * share).backward();
    }
    dist::average_gradients(params_);
    if (o_.clip_value > 0) torch::nn::utils::clip_grad_value_(params_, o_.clip_value);
    if (o_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params_, o_.clip_norm);
    optimizer_->step();
    ++st_.step;
    ++steps_this_run_;
    st_.loss_sum += c.loss_sum;
    st_.loss_count += c.count;
    progress_.step(st_.step, c.loss_sum / static_cast<double>(std::max<int64_t>(c.count, 1)),
                   c.count);
    return c;
  }

  Metrics evaluate() {
    torch::NoGradGuard no_grad;
    model_.eval();
    // In a data-parallel run a stop is acted on at the next step, when every rank learns of it:
    // an evaluation abandoned on one rank only would leave the others waiting.
    const PollStops poll(!dist::enabled());
    return agree_on(task_.evaluate());
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
    const double value = m.get(m.main);
    if (improves_on(value, st_.best, m.higher_is_better, 0.0)) {
      st_.best = value;
      st_.best_metrics = metrics_text(m);
      st_.bad_epochs = 0;
      r_.best = m;
      save(best_path_, st_.epoch + 1, 0);
    } else {
      ++st_.bad_epochs;
    }
    set_lr(*optimizer_,
           scheduler_.after_epoch(st_.epoch, value, m.higher_is_better, get_lr(*optimizer_)));
    const double train_loss =
        st_.loss_count ? st_.loss_sum / static_cast<double>(st_.loss_count) : NAN;
    if (rank0_)
      append_metrics(csv_path_, st_.epoch + 1, st_.step, train_loss, m, get_lr(*optimizer_),
                     elapsed());
    if (!quiet_) {
      fmt::print(stderr, "epoch {}: train loss {:.4f}, {} (best {}: {:.4f}), lr {:.3g}, {}\n",
                 st_.epoch + 1, train_loss, metrics_text(m), m.main, st_.best, get_lr(*optimizer_),
                 hms(elapsed()));
    }
    st_.elapsed = elapsed();
    save(last_path_, st_.epoch + 1, 0);
    r_.epochs_done = st_.epoch + 1;
    if (o_.early_stopping > 0 && st_.bad_epochs >= o_.early_stopping) {
      r_.early_stopped = true;
      if (!quiet_)
        fmt::print(stderr, "early stopping: {} epochs without improvement\n", st_.bad_epochs);
      return true;
    }
    if (time_up && !quiet_)
      fmt::print(stderr, "stopping: max_minutes = {} reached\n", o_.max_minutes);
    return time_up;
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
  const bool rank0_, quiet_;
  const int world_;
  const std::string last_path_, best_path_, csv_path_;
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
  Clock::time_point t_start_ = Clock::now();
  double elapsed_before_ = 0;
};

}  // namespace

FitResult fit(Task& task, const TrainOptions& o, const RunOptions& run,
              const std::string& config_text) {
  return FitLoop(task, o, run, config_text).run();
}

}  // namespace rnnkit::app

#include <rnnkit/train/train.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <torch/cuda.h>

#include <rnnkit/compat.h>
#include <rnnkit/data/batching.h>

#include <rnnkit/train/json.h>
#include <rnnkit/train/signals.h>
#include <rnnkit/train/system.h>

namespace rnnkit::train {
namespace fs = std::filesystem;

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

torch::Tensor Shard::slice(const torch::Tensor& t, int64_t dim) const {
  TORCH_CHECK(t.size(dim) % world == 0, "Shard::slice: dimension ", dim, " of size ", t.size(dim),
              " cannot be shared equally by ", world, " processes");
  const int64_t b = t.size(dim) / world;
  return t.narrow(dim, rank * b, b);
}

std::vector<std::vector<size_t>> plan_epoch(const std::vector<size_t>& lengths,
                                            const TrainOptions& options, int64_t epoch,
                                            const Shard& shard) {
  data::BatchPlanOptions o;
  o.batch_size = static_cast<size_t>(options.batch_size);
  o.seed = static_cast<uint64_t>(options.seed);
  o.rank = static_cast<size_t>(shard.rank);
  o.world = static_cast<size_t>(shard.world);
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

int report_done(const RunOptions& run, const FitResult& r) {
  if (!run.quiet && !r.interrupted) {
    std::cerr << "done: " << r.epochs_done << " epochs, " << r.steps << " steps; checkpoints in "
              << run.run_dir << "\n";
  }
  return exit_status(r);
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

}  // namespace rnnkit::train

#include <rnnkit/train/train.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <torch/cuda.h>

#include <rnnkit/compat.h>
#include <rnnkit/data/batching.h>
#include <rnnkit/precision.h>

#include <rnnkit/train/distributed.h>
#include <rnnkit/train/json.h>
#include <rnnkit/train/signals.h>
#include <rnnkit/train/system.h>

namespace rnnkit::train {
namespace fs = std::filesystem;

KeyTable TrainOptions::keys(const std::string& s, const TrainOptions& d) {
  return KeyTable({
      // epochs = 0 only where the default is 0: an optional phase ([pretrain]).
      integer(s, "epochs", d.epochs, d.epochs == 0 ? 0 : 1, 1000000,
              "passes over the training data"),
      number(s, "max_minutes", d.max_minutes, 0, 1e6,
             "stop once this much training time has passed, counted over every `--resume` of "
             "the run (checked every step). At an epoch's end the stop follows that epoch's "
             "evaluation; inside an epoch it only pauses the epoch: `last` is written, the "
             "evaluation is printed as a report, and `best`, the schedule, early stopping and "
             "`metrics.csv` are left to whole epochs, so a run trained in pieces is the run "
             "trained at once; 0 = no limit"),
      integer(s, "batch_size", d.batch_size, 1, 65536,
              "sequences per batch (parallel streams for truncated BPTT)"),
      choice(s, "optimizer", d.optimizer, {"sgd", "adam", "adamw"},
             "`sgd` (with `momentum`), `adam`, `adamw` (LibTorch's)"),
      number(s, "learning_rate", d.learning_rate, 1e-12, 1e3, "the optimizer's step size"),
      number(s, "momentum", d.momentum, 0, 0.999999, "SGD only"),
      number(s, "weight_decay", d.weight_decay, 0, 10, "L2 weight decay (decoupled with `adamw`)"),
      number(s, "clip_norm", d.clip_norm, 0, 1e9,
             "rescale gradients whose global L2 norm exceeds this "
             "(`torch::nn::utils::clip_grad_norm_`); 0 = off"),
      number(s, "clip_value", d.clip_value, 0, 1e9,
             "clamp each gradient element into [-v, v]; 0 = off"),
      choice(s, "schedule", d.schedule, {"none", "step", "plateau", "cosine"},
             "`step`: multiply the learning rate by `gamma` every `step_size` epochs; `plateau`: "
             "by `gamma` when the validation metric has not improved for more than "
             "`plateau_patience` epochs; `cosine`: anneal by step from `learning_rate` at the "
             "start to `min_lr` at the end of epoch `epochs` (Loshchilov & Hutter 2017, no "
             "restarts; set `epochs` to what `max_minutes` allows, or the run stops before the "
             "rate is low)"),
      integer(s, "step_size", d.step_size, 1, 1000000000, "`step`: epochs between decays"),
      integer(s, "decay_start", d.decay_start, 0, INT64_MAX,
              "`step`: decay only once this many epochs are done"),
      number(s, "gamma", d.gamma, 1e-6, 1.0, "`step` and `plateau`: the decay factor"),
      integer(s, "plateau_patience", d.plateau_patience, 0, INT64_MAX,
              "`plateau`: epochs without improvement before decaying"),
      number(s, "plateau_threshold", d.plateau_threshold, 0, 0.5,
             "`plateau`: the relative gain that counts as an improvement, as `threshold` in "
             "PyTorch's `ReduceLROnPlateau` (rel mode): with 0.015, an epoch less than 1.5% "
             "better than the best so far (below it for a loss or perplexity, above it for "
             "accuracy or F1) counts as no improvement. The best so far moves only on such "
             "gains, so a run of small ones still adds up to one; 0 counts any gain"),
      number(s, "min_lr", d.min_lr, 0, 1e3,
             "`cosine`: the rate at the end; at most `learning_rate`"),
      integer(s, "early_stopping", d.early_stopping, 0, INT64_MAX,
              "stop after this many epochs without a better validation metric; 0 = off"),
      integer(s, "seed", d.seed, 0, INT64_MAX,
              "the same seed on the same CPU gives the same numbers"),
      integer(s, "log_every", d.log_every, 1, INT64_MAX,
              "steps between progress lines when stderr is not a terminal"),
      choice(s, "precision", d.precision, {"fp32", "bf16", "fp16"},
             "`bf16`: the forward's matrix products (cells, input projections, output layers) "
             "in bf16 under autocast, everything else (gates, cell states, losses, softmax, "
             "CRF, weights, optimizer) in fp32; fast only on CPUs with `avx512_bf16` or "
             "`amx_bf16` (elsewhere much slower: a warning says so) and on CUDA; `fp16`: the "
             "same in fp16, CUDA only, with loss scaling (`grad_scaler`; docs/precision.md)"),
      choice(s, "grad_scaler", d.grad_scaler, {"auto", "dynamic", "off"},
             "loss scaling, as `torch.cuda.amp.GradScaler`: the loss is multiplied by a scale "
             "before backward and the gradients divided by it before clipping and the step; a "
             "step whose gradients overflow is skipped and the scale halved, and it doubles "
             "after `grad_scaler_interval` steps without one. `auto`: `dynamic` under `fp16`, "
             "`off` otherwise (fp32 and bf16 keep fp32's exponent range and need none; with "
             "`dynamic` they give the same numbers, since the scale is a power of two)"),
      number(s, "grad_scaler_init", d.grad_scaler_init, 1, 1e308,
             "the first loss scale (PyTorch's `init_scale`)"),
      integer(s, "grad_scaler_interval", d.grad_scaler_interval, 1, INT64_MAX,
              "steps without an overflow before the loss scale doubles (PyTorch's "
              "`growth_interval`)"),
  });
}

KeyTable TrainOptions::keys() { return keys("train", TrainOptions()); }

TrainOptions TrainOptions::read(ConfigReader& c, const std::string& section,
                                const TrainOptions& defaults) {
  const KeyTable keys = TrainOptions::keys(section, defaults);
  auto k = [&](const char* name) -> const Key& { return keys.at(section, name); };
  TrainOptions o = defaults;
  o.epochs = c.integer(k("epochs"));
  o.max_minutes = c.number(k("max_minutes"));
  o.batch_size = c.integer(k("batch_size"));
  o.optimizer = c.choice(k("optimizer"));
  o.learning_rate = c.number(k("learning_rate"));
  o.momentum = c.number(k("momentum"));
  o.weight_decay = c.number(k("weight_decay"));
  o.clip_norm = c.number(k("clip_norm"));
  o.clip_value = c.number(k("clip_value"));
  o.schedule = c.choice(k("schedule"));
  o.step_size = c.integer(k("step_size"));
  o.decay_start = c.integer(k("decay_start"));
  o.gamma = c.number(k("gamma"));
  o.plateau_patience = c.integer(k("plateau_patience"));
  o.plateau_threshold = c.number(k("plateau_threshold"));
  o.min_lr = c.number(k("min_lr"));
  if (o.min_lr > o.learning_rate) {
    throw ConfigError(
        fmt::format("{}: min_lr = {} is above learning_rate = {}; the cosine schedule "
                    "decays from learning_rate down to min_lr",
                    c.where(section, "min_lr"), o.min_lr, o.learning_rate));
  }
  o.early_stopping = c.integer(k("early_stopping"));
  o.seed = c.integer(k("seed"));
  o.log_every = c.integer(k("log_every"));
  o.precision = c.choice(k("precision"));
  o.grad_scaler = c.choice(k("grad_scaler"));
  o.grad_scaler_init = c.number(k("grad_scaler_init"));
  o.grad_scaler_interval = c.integer(k("grad_scaler_interval"));
  return o;
}

void warn_if_bf16_is_slow(Precision precision, c10::DeviceType device, const std::string& setting) {
  if (precision != Precision::kBF16 || device != c10::DeviceType::CPU) return;
  const std::string missing = missing_bf16_flag();
  if (missing.empty()) return;
  fmt::print(stderr,
             "warning: {} on a CPU without {}: its bf16 products are converted in software, "
             "many times slower than fp32 here (rnnkit_bench --precision bf16 measures it)\n",
             setting, missing);
}

RunOptions resumed_if_started(const RunOptions& run) {
  RunOptions r = run;
  r.resume = (run.resume || run.auto_resume) && fs::exists(fs::path(run.run_dir) / "last.pt");
  r.auto_resume = false;
  return r;
}

RunOptions sub_run(const RunOptions& run, const std::string& name) {
  RunOptions r = run;
  r.run_dir = (fs::path(run.run_dir) / name).string();
  return resumed_if_started(r);
}

std::string best_checkpoint(const RunOptions& run) {
  return (fs::path(run.run_dir) / "best.pt").string();
}

void warn(const std::string& message) {
  if (dist::is_rank0()) fmt::print(stderr, "warning: {}\n", message);
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
  if (run.precision != "fp32") {
    // A command that loads a checkpoint runs under autocast from here to its end, on this
    // thread and the threads rnnkit starts from it (the two directions): the weights stay fp32.
    Precision p;
    try {
      p = parse_precision(run.precision);
    } catch (const c10::ValueError&) {
      throw std::invalid_argument("--precision: expected fp32, bf16 or fp16, got '" +
                                  run.precision + "'");
    }
    if (p == Precision::kFP16 && device->is_cpu()) {
      throw std::invalid_argument("--precision fp16 is for CUDA devices only; on a CPU use bf16");
    }
    // Never destroyed: the guard's end clears autocast's thread-local cache, which is gone by
    // the time static objects are destroyed at exit (it corrupted the heap there).
    static const AutocastGuard* whole_command = nullptr;
    delete whole_command;
    whole_command = new AutocastGuard(p, device->type());
    warn_if_bf16_is_slow(p, device->type(), "--precision bf16");
  }
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

#include <rnnkit/train/step_strategy.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>
#include <toml++/toml.h>

#include <rnnkit/train/config.h>
#include <rnnkit/train/crc32.h>
#include <rnnkit/train/distributed.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::train {
namespace {

class SingleProcess final : public StepStrategy {
 public:
  Shard shard() const override { return {}; }
  void agree_on_config(const std::string&) override {}
  std::string from_first(const std::string& s) override { return s; }
  void on_first(const std::function<void()>& fn) override { fn(); }
  void synchronize(torch::nn::Module&) override {}

  StepReport forward_backward(Task& task, int64_t index, const std::function<bool()>& out_of_time,
                              const std::vector<torch::Tensor>&) override {
    const BatchLoss b = train_batch(task, index);
    StepReport r;
    r.count = b.count;
    r.loss_sum = b.count > 0 ? b.loss.item<double>() * static_cast<double>(b.count) : 0.0;
    r.nonfinite = !std::isfinite(r.loss_sum);
    r.time_up = out_of_time();
    r.signal = stop_signal();
    if (!r.nonfinite && b.count > 0) backward(b.loss, 1.0);
    return r;
  }

  Metrics agree_on(Metrics m) override { return m; }
  std::vector<torch::Tensor> gather(const torch::Tensor& t) override { return {t}; }
};

/// A TOML table naming each data file of a config ([data] strings and string arrays that are
/// regular files) with its size and CRC-32.
std::string data_fingerprints(const std::string& config_text) {
  namespace fs = std::filesystem;
  const auto table = toml::parse(config_text);
  const auto* data = table["data"].as_table();
  if (!data) return "";
  std::string out = "\n[rnnkit_data_files]\n";
  auto add = [&](const std::string& key, const std::string& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return;
    std::ifstream in(path, std::ios::binary);
    std::vector<char> buf(1 << 20);
    uint32_t crc = 0;
    uint64_t size = 0;
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
      crc = crc32_of(buf.data(), static_cast<size_t>(in.gcount()), crc);
      size += static_cast<uint64_t>(in.gcount());
    }
    out += fmt::format("\"data.{}\" = \"{} bytes, crc32 {:08x}\"\n", key, size, crc);
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

/// torchrun's processes, one shard each, on the process group of distributed.h.
class DataParallel final : public StepStrategy {
 public:
  DataParallel() : shard_{dist::rank(), dist::world_size()} {}
  Shard shard() const override { return shard_; }

  /// The processes must train one model on one dataset: before the first collective that
  /// depends on the config, each compares its resolved config and the size and CRC-32 of each
  /// data file it names with the first's, and every process stops with the first key or file
  /// that differs (not a Gloo abort, a hang, or a silently wrong model).
  void agree_on_config(const std::string& config_text) override {
    const std::string mine = config_text + data_fingerprints(config_text);
    const std::string rank0s = dist::broadcast_string(mine);
    std::string problem;
    if (const auto d = first_difference(rank0s, mine)) {
      problem = fmt::format(
          "rank {}'s config differs from rank 0's at {} ({} on rank 0, {} on rank {}); every "
          "rank of a data-parallel run must be given the same config, --set overrides and data",
          shard_.rank, d->key, d->a, d->b, shard_.rank);
    }
    for (int r = 1; r < shard_.world; ++r) {
      const std::string theirs = dist::broadcast_string(problem, r);
      if (!theirs.empty()) throw std::invalid_argument(theirs);
    }
  }
  std::string from_first(const std::string& s) override { return dist::broadcast_string(s); }
  void on_first(const std::function<void()>& fn) override { dist::on_rank0(fn); }
  void synchronize(torch::nn::Module& model) override {
    std::vector<torch::Tensor> state = model.parameters();
    for (const auto& b : model.buffers()) state.push_back(b);
    dist::broadcast_module(state);
  }

  StepReport forward_backward(Task& task, int64_t index, const std::function<bool()>& out_of_time,
                              const std::vector<torch::Tensor>& params) override {
    const BatchLoss b = train_batch(task, index);
    const double local_sum =
        b.count > 0 ? b.loss.item<double>() * static_cast<double>(b.count) : 0.0;
    const StepReport r = exchange(local_sum, b.count, out_of_time());
    if (r.nonfinite) return r;
    if (b.count > 0) {
      // Each shard's mean, weighted by its share of the global batch: after averaging over the
      // processes the gradient is the global batch's mean, whatever the shares.
      const double share = static_cast<double>(shard_.world) * static_cast<double>(b.count) /
                           static_cast<double>(std::max<int64_t>(r.count, 1));
      backward(b.loss, share);
    }
    dist::average_gradients(params);
    return r;
  }

  Metrics agree_on(Metrics m) override {
    std::vector<double> v;
    for (const auto& kv : m.values) v.push_back(kv.second);
    std::vector<torch::Tensor> t{torch::tensor(v, torch::kDouble)};
    dist::broadcast_(t, 0);
    for (size_t i = 0; i < v.size(); ++i)
      m.values[i].second = t[0][static_cast<int64_t>(i)].item<double>();
    return m;
  }
  std::vector<torch::Tensor> gather(const torch::Tensor& t) override { return dist::all_gather(t); }

 private:
  /// The loss sums and counts summed, the stop requests combined: any process's signal (SIGINT
  /// before SIGTERM), the first process's clock.
  StepReport exchange(double loss_sum, int64_t count, bool time_up_here) const {
    const int sig = stop_signal();
    const bool finite = std::isfinite(loss_sum);
    auto t = torch::tensor({finite ? loss_sum : 0.0, static_cast<double>(count), finite ? 0.0 : 1.0,
                            sig == SIGINT ? 1.0 : 0.0, sig != 0 && sig != SIGINT ? 1.0 : 0.0,
                            shard_.rank == 0 && time_up_here ? 1.0 : 0.0},
                           torch::kDouble);
    dist::all_reduce_sum_(t);
    const auto v = t.accessor<double, 1>();
    StepReport r;
    r.gathered = true;
    r.nonfinite = v[2] > 0;
    r.loss_sum = r.nonfinite ? NAN : v[0];
    r.count = static_cast<int64_t>(std::llround(v[1]));
    r.signal = v[3] > 0 ? SIGINT : v[4] > 0 ? SIGTERM : 0;
    r.time_up = v[5] > 0;
    if (r.signal && !sig) set_stop_signal(r.signal);  // every process reports the same status
    if (r.signal) dist::stop_agreed();
    return r;
  }

  Shard shard_;
};

}  // namespace

std::unique_ptr<StepStrategy> single_process() { return std::make_unique<SingleProcess>(); }
std::unique_ptr<StepStrategy> data_parallel() { return std::make_unique<DataParallel>(); }
std::unique_ptr<StepStrategy> make_step_strategy() {
  return dist::enabled() ? data_parallel() : single_process();
}

}  // namespace rnnkit::train

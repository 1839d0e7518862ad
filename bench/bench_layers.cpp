// Forward and forward+backward time of each rnnkit layer against its torch::nn counterpart, in
// the same process, on the same input. Prints a Markdown table; docs/benchmarks.md records it.
//
//   build/bench/rnnkit_bench                       # B=32 T=100 D=128 H=256, 1 and 2 layers,
//                                                  # 1 and 2 threads
//   build/bench/rnnkit_bench --bidirectional --cells lstm,gru_reset_after --threads 2
//       # both directions: rnnkit with them concurrent (the default with 2 threads) and one after
//       # the other, against torch::nn's bidirectional LSTM/GRU
//   build/bench/rnnkit_bench --precision bf16
//       # rnnkit in fp32 and under bf16 autocast (rnnkit/precision.h), against torch::nn in fp32
#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>

#include <fmt/core.h>
#include <fmt/format.h>
#include <torch/torch.h>
#include <cxxopts.hpp>

#include <rnnkit/rnnkit.h>

#include <rnnkit/train/cli.h>
#include <rnnkit/train/system.h>

namespace {

using torch::Tensor;
using Clock = std::chrono::steady_clock;

struct Sizes {
  int64_t B, T, D, H;
};

/// Runs the functions in turn (a, b, c, a, b, c, ...) so that all see the same machine state,
/// and returns the median wall time of each in milliseconds (0 for an empty one).
std::vector<double> median_ms(const std::vector<std::function<void()>>& fs, int warmup, int iters) {
  auto time = [](const std::function<void()>& f) {
    if (!f) return 0.0;
    const auto t0 = Clock::now();
    f();
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  std::vector<std::vector<double>> t(fs.size());
  for (int i = 0; i < warmup + iters; ++i) {
    for (size_t k = 0; k < fs.size(); ++k) {
      const double ms = time(fs[k]);
      if (i >= warmup) t[k].push_back(ms);
    }
  }
  std::vector<double> medians;
  for (auto& v : t) {
    std::sort(v.begin(), v.end());
    medians.push_back(v[v.size() / 2]);
  }
  return medians;
}

/// Matrix-product FLOPs of one forward pass of `rnn` over T steps of a batch of B, from the
/// cells themselves (CellImplBase::matmul_flops_per_step), in GFLOP.
double forward_gflop(rnnkit::RNN& rnn, const Sizes& s) {
  double flop = 0;
  for (int64_t l = 0; l < rnn->options.num_layers(); ++l) {
    for (int64_t d = 0; d < rnn->num_directions(); ++d) {
      flop += s.T * rnn->cell(l, d).matmul_flops_per_step(s.B);
    }
  }
  return flop / 1e9;
}

std::shared_ptr<torch::nn::Module> torch_counterpart(const std::string& cell, const Sizes& s,
                                                     int64_t layers, bool bi) {
  if (cell == "lstm") {
    return torch::nn::LSTM(torch::nn::LSTMOptions(s.D, s.H).num_layers(layers).bidirectional(bi))
        .ptr();
  }
  if (cell == "gru_reset_after") {
    return torch::nn::GRU(torch::nn::GRUOptions(s.D, s.H).num_layers(layers).bidirectional(bi))
        .ptr();
  }
  if (cell == "rnn" || cell == "rnn_relu") {
    auto o = torch::nn::RNNOptions(s.D, s.H).num_layers(layers).bidirectional(bi);
    if (cell == "rnn_relu") o.nonlinearity(torch::kReLU);
    return torch::nn::RNN(o).ptr();
  }
  return nullptr;
}

Tensor run_torch(torch::nn::Module& m, const Tensor& x) {
  if (auto* l = dynamic_cast<torch::nn::LSTMImpl*>(&m)) return std::get<0>(l->forward(x));
  if (auto* g = dynamic_cast<torch::nn::GRUImpl*>(&m)) return std::get<0>(g->forward(x));
  return std::get<0>(dynamic_cast<torch::nn::RNNImpl&>(m).forward(x));
}

}  // namespace

int run(int argc, char** argv) {
  cxxopts::Options cli("rnnkit_bench", "rnnkit layers against torch::nn, same process");
  cli.add_options()("cells", "cells to time",
                    cxxopts::value<std::vector<std::string>>()->default_value(
                        fmt::format("{}", fmt::join(rnnkit::builtin_cell_names(), ","))))(
      "threads", "thread counts", cxxopts::value<std::vector<int>>()->default_value("1,2"))(
      "layers", "layer counts", cxxopts::value<std::vector<int64_t>>()->default_value("1,2"))(
      "B", "batch", cxxopts::value<int64_t>()->default_value("32"))(
      "T", "time steps", cxxopts::value<int64_t>()->default_value("100"))(
      "D", "input size", cxxopts::value<int64_t>()->default_value("128"))(
      "H", "hidden size", cxxopts::value<int64_t>()->default_value("256"))(
      "iters", "timed iterations (median)", cxxopts::value<int>()->default_value("9"))(
      "warmup", "untimed iterations", cxxopts::value<int>()->default_value("2"))(
      "bidirectional", "both directions; rnnkit timed concurrent and sequential")(
      "precision", "bf16: rnnkit also timed under bf16 autocast (products in bf16)",
      cxxopts::value<std::string>()->default_value("fp32"))("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) {
    std::cout << cli.help() << "\n";
    return 0;
  }
  const Sizes s{args["B"].as<int64_t>(), args["T"].as<int64_t>(), args["D"].as<int64_t>(),
                args["H"].as<int64_t>()};
  const int iters = args["iters"].as<int>(), warmup = args["warmup"].as<int>();

  // As the apps do (RNNKIT_MALLOC=glibc: glibc's defaults, for comparison).
  const bool kept = rnnkit::train::keep_freed_memory();
  const bool bi = args.count("bidirectional") > 0;
  const auto precision = rnnkit::parse_precision(args["precision"].as<std::string>());
  const bool mixed = precision != rnnkit::Precision::kFP32;
  if (mixed && (bi || precision == rnnkit::Precision::kFP16)) {
    std::cerr << "rnnkit_bench: --precision bf16 times one direction on the CPU (no "
                 "--bidirectional, no fp16)\n";
    return 2;
  }

  fmt::print(
      "B={} T={} D={} H={}{}, median of {} runs after {} warm-up runs, float32, CPU, malloc: "
      "{}\n\n",
      s.B, s.T, s.D, s.H, bi ? ", bidirectional" : "", iters, warmup,
      kept ? "freed memory kept" : "glibc defaults");
  if (mixed) {
    const std::string missing = rnnkit::missing_bf16_flag();
    fmt::print("bf16: {}\n\n", missing.empty() ? "this CPU multiplies bf16 natively"
                                               : "this CPU lacks " + missing +
                                                     " (bf16 products are converted in software)");
    fmt::print(
        "| cell | layers | threads | pass | rnnkit fp32 ms | rnnkit bf16 ms | torch::nn fp32 ms | "
        "bf16 / fp32 | bf16 / torch |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|\n");
  } else if (bi) {
    fmt::print(
        "| cell | layers | threads | pass | rnnkit concurrent ms | rnnkit sequential ms | "
        "torch::nn ms | concurrent / torch | sequential / torch | concurrent speed-up |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
  } else {
    fmt::print(
        "| cell | layers | threads | pass | rnnkit ms | torch::nn ms | ratio | rnnkit GFLOP/s |\n");
    fmt::print("|---|---|---|---|---|---|---|---|\n");
  }
  for (int threads : args["threads"].as<std::vector<int>>()) {
    at::set_num_threads(threads);
    for (int64_t layers : args["layers"].as<std::vector<int64_t>>()) {
      for (const auto& cell : args["cells"].as<std::vector<std::string>>()) {
        torch::manual_seed(0);
        auto ours =
            rnnkit::RNN(rnnkit::RNNOptions(cell, s.D, s.H).num_layers(layers).bidirectional(bi));
        auto theirs = torch_counterpart(cell, s, layers, bi);
        const Tensor x = torch::randn({s.T, s.B, s.D});
        const double gflop = forward_gflop(ours, s);
        // The sequential path is timed with concurrency forced off, the other with the default.
        auto with = [&](bool concurrent, const std::function<void()>& f) {
          return [&ours, concurrent, f] {
            ours->options.concurrent_directions(concurrent ? rnnkit::optional<bool>()
                                                           : rnnkit::optional<bool>(false));
            f();
          };
        };
        const std::function<void()> train_ours = [&] { ours->forward(x).output.sum().backward(); };
        const std::function<void()> infer_ours = [&] {
          torch::NoGradGuard g;
          ours->forward(x);
        };
        // Under autocast: the forward in the guard, the backward outside it, as in PyTorch.
        const std::function<void()> train_lower = [&] {
          Tensor y;
          {
            rnnkit::AutocastGuard g(precision, c10::DeviceType::CPU);
            y = ours->forward(x).output;
          }
          y.sum().backward();
        };
        const std::function<void()> infer_lower = [&] {
          torch::NoGradGuard g;
          rnnkit::AutocastGuard a(precision, c10::DeviceType::CPU);
          ours->forward(x);
        };
        const std::function<void()> train_theirs = [&] { run_torch(*theirs, x).sum().backward(); };
        const std::function<void()> infer_theirs = [&] {
          torch::NoGradGuard g;
          run_torch(*theirs, x);
        };

        for (const bool train : {true, false}) {
          const auto& mine = train ? train_ours : infer_ours;
          const std::function<void()> ref =
              theirs ? (train ? train_theirs : infer_theirs) : std::function<void()>();
          const char* pass = train ? "fwd+bwd" : "fwd";
          if (mixed) {
            const auto t = median_ms({mine, train ? train_lower : infer_lower, ref}, warmup, iters);
            auto ms = [&](double v) {
              return theirs ? fmt::format("{:.1f}", v) : std::string("-");
            };
            fmt::print("| {} | {} | {} | {} | {:.1f} | {:.1f} | {} | {:.2f} | {} |\n", cell, layers,
                       threads, pass, t[0], t[1], ms(t[2]), t[1] / t[0],
                       theirs ? fmt::format("{:.2f}", t[1] / t[2]) : std::string("-"));
          } else if (bi) {
            const auto t = median_ms({with(true, mine), with(false, mine), ref}, warmup, iters);
            auto ratio = [&](double ms) {
              return theirs ? fmt::format("{:.2f}", ms / t[2]) : std::string("-");
            };
            fmt::print("| {} | {} | {} | {} | {:.1f} | {:.1f} | {} | {} | {} | {:.2f} |\n", cell,
                       layers, threads, pass, t[0], t[1],
                       theirs ? fmt::format("{:.1f}", t[2]) : std::string("-"), ratio(t[0]),
                       ratio(t[1]), t[1] / t[0]);
          } else {
            const auto t = median_ms({mine, ref}, warmup, iters);
            // Backward does about twice the forward's products.
            const double rate = (train ? 3 : 1) * gflop / (t[0] / 1e3);
            if (theirs) {
              fmt::print("| {} | {} | {} | {} | {:.1f} | {:.1f} | {:.2f} | {:.1f} |\n", cell,
                         layers, threads, pass, t[0], t[1], t[0] / t[1], rate);
            } else {
              fmt::print("| {} | {} | {} | {} | {:.1f} | - | - | {:.1f} |\n", cell, layers, threads,
                         pass, t[0], rate);
            }
          }
          std::fflush(stdout);
        }
      }
    }
  }
  return 0;
}

// A bad option is a usage error (exit 2) and a bad file an error (exit 1), as in the apps.
int main(int argc, char** argv) {
  return rnnkit::train::guarded_main("rnnkit_bench", run, argc, argv);
}

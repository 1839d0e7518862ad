// Trains the user-defined MGU cell, by name, on a synthetic memory task: read T random tokens,
// then name the first one (many-to-one). Everything comes from a TOML config.
//
//   train_mgu --config configs/example_mgu.toml [--threads N]
#include <cstdlib>
#include <iostream>

#include <toml++/toml.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <cxxopts.hpp>

#include "mgu_cell.h"

namespace {

struct Config {
  std::string cell;
  int64_t hidden_size, num_layers, vocab_size, length, steps, batch_size, seed;
  double learning_rate, target_accuracy;
};

template <class T>
T require(const toml::table& t, const char* section, const char* key, const std::string& file) {
  const auto v = t[section][key].value<T>();
  if (!v) {
    throw std::runtime_error(file + ": missing or mistyped key " + section + "." + key);
  }
  return *v;
}

Config load(const std::string& path) {
  const toml::table t = toml::parse_file(path);
  Config c;
  c.cell = require<std::string>(t, "model", "cell", path);
  c.hidden_size = require<int64_t>(t, "model", "hidden_size", path);
  c.num_layers = require<int64_t>(t, "model", "num_layers", path);
  c.vocab_size = require<int64_t>(t, "task", "vocab_size", path);
  c.length = require<int64_t>(t, "task", "length", path);
  c.steps = require<int64_t>(t, "train", "steps", path);
  c.batch_size = require<int64_t>(t, "train", "batch_size", path);
  c.seed = require<int64_t>(t, "train", "seed", path);
  c.learning_rate = require<double>(t, "train", "learning_rate", path);
  c.target_accuracy = require<double>(t, "train", "target_accuracy", path);
  return c;
}

/// x [T, B, V] one-hot tokens, y [B] the first token of each sequence.
std::pair<torch::Tensor, torch::Tensor> batch(const Config& c, int64_t B) {
  const torch::Tensor tokens = torch::randint(c.vocab_size, {c.length, B}, torch::kLong);
  return {torch::one_hot(tokens, c.vocab_size).to(torch::kFloat), tokens[0]};
}

}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options cli("train_mgu", "Train a user-defined rnnkit cell from a TOML config");
  cli.add_options()("config", "TOML config", cxxopts::value<std::string>())(
      "threads", "threads (0: all cores)", cxxopts::value<int>()->default_value("0"))("h,help",
                                                                                      "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help") || !args.count("config")) {
    std::cout << cli.help() << "\n";
    return args.count("help") ? 0 : 2;
  }
  const int threads = args["threads"].as<int>();
  at::set_num_threads(threads > 0 ? threads
                                  : static_cast<int>(std::thread::hardware_concurrency()));

  const Config c = load(args["config"].as<std::string>());
  mgu::register_mgu();
  torch::manual_seed(c.seed);
  auto rnn =
      rnnkit::RNN(rnnkit::RNNOptions(c.cell, c.vocab_size, c.hidden_size).num_layers(c.num_layers));
  auto head = torch::nn::Linear(c.hidden_size, c.vocab_size);
  std::cout << *rnn << "\n";
  auto params = rnn->parameters();
  for (const auto& p : head->parameters()) params.push_back(p);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(c.learning_rate));

  for (int64_t step = 1; step <= c.steps; ++step) {
    const auto [x, y] = batch(c, c.batch_size);
    const auto out = rnn->forward(x);
    const auto loss = torch::nn::functional::cross_entropy(head->forward(out.states.back().a), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step % 50 == 0) std::cout << "step " << step << " loss " << loss.item<double>() << "\n";
  }
  torch::NoGradGuard no_grad;
  const auto [x, y] = batch(c, 1000);
  const double acc = head->forward(rnn->forward(x).states.back().a)
                         .argmax(1)
                         .eq(y)
                         .to(torch::kDouble)
                         .mean()
                         .item<double>();
  std::cout << "held-out accuracy " << acc << " (target " << c.target_accuracy << ")\n";
  return acc >= c.target_accuracy ? EXIT_SUCCESS : EXIT_FAILURE;
} catch (const std::exception& e) {
  std::cerr << "train_mgu: " << e.what() << "\n";
  return EXIT_FAILURE;
}

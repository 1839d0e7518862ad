// A task app built on rnnkit::train: a many-to-one classifier for a synthetic task (is `a` or
// `b` the more frequent symbol of a sequence?). The app writes only what is its own: the config
// keys of its task, the data, the model and the loss. fit() does the rest.
//
//   majority train --config majority.toml [--run-dir DIR] [--resume] [--set model.cell=gru] ...
//   majority eval  --checkpoint DIR/best.pt [--min-accuracy 0.9]
#include <random>

#include <rnnkit/rnn.h>
#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/classification.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/log.h>
#include <rnnkit/train/model_config.h>
#include <rnnkit/train/signals.h>
#include <rnnkit/train/train.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

namespace {

using namespace rnnkit;

struct Config {
  int64_t num_train = 2000, num_valid = 500, min_length = 5, max_length = 25, data_seed = 11;
  int64_t embedding_size = 8;
  RNNOptions rnn{"lstm", 0, 128};  ///< input_size: embedding_size, set by the model
  train::TrainOptions train;

  static Config read(train::ConfigReader& c) {
    Config k;
    k.num_train = c.get_int("data", "num_train", k.num_train, 1, 100000000);
    k.num_valid = c.get_int("data", "num_valid", k.num_valid, 1, 100000000);
    k.min_length = c.get_int("data", "min_length", k.min_length, 1, 100000);
    k.max_length = c.get_int("data", "max_length", k.max_length, k.min_length, 100000);
    k.data_seed = c.get_int("data", "seed", k.data_seed, 0);
    k.embedding_size = c.get_int("model", "embedding_size", k.embedding_size, 1, train::kMaxWidth);
    k.rnn = train::read_rnn_options(c, "model", k.rnn);
    k.train = train::TrainOptions::read(c);
    c.reject_unknown_keys();
    return k;
  }
  std::string architecture() const {
    return cell_label(rnn.cell(), rnn.cell_options()) + " E=" + std::to_string(embedding_size) +
           " H=" + std::to_string(rnn.hidden_size()) + " L=" + std::to_string(rnn.num_layers());
  }
};

/// Sequences of 0s and 1s of odd length; the label is the more frequent symbol.
struct Data {
  std::vector<std::vector<int64_t>> x;
  std::vector<int64_t> y;
};
Data make_data(int64_t n, const Config& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> len(c.min_length, c.max_length), bit(0, 1);
  Data d;
  for (int64_t i = 0; i < n; ++i) {
    int64_t length = len(rng);
    if (length % 2 == 0) length += length < c.max_length ? 1 : -1;  // odd (no ties), in bounds
    std::vector<int64_t> s(static_cast<size_t>(std::max<int64_t>(length, 1)));
    int64_t ones = 0;
    for (auto& t : s) ones += (t = bit(rng));
    d.y.push_back(2 * ones > static_cast<int64_t>(s.size()) ? 1 : 0);
    d.x.push_back(std::move(s));
  }
  return d;
}

struct ModelImpl : torch::nn::Module {
  explicit ModelImpl(const Config& c)
      : embedding(register_module("embedding", torch::nn::Embedding(2, c.embedding_size))),
        rnn(register_module("rnn", RNN(RNNOptions(c.rnn).input_size(c.embedding_size)))),
        head(register_module("head", torch::nn::Linear(c.rnn.hidden_size(), 2))) {}
  /// Logits [B, 2] for the sequences `idx` of `d`.
  torch::Tensor forward(const Data& d, const std::vector<size_t>& idx) {
    int64_t T = 0;
    for (auto i : idx) T = std::max<int64_t>(T, static_cast<int64_t>(d.x[i].size()));
    auto x = torch::zeros({T, static_cast<int64_t>(idx.size())}, torch::kLong);
    auto lengths = torch::empty({static_cast<int64_t>(idx.size())}, torch::kLong);
    for (size_t b = 0; b < idx.size(); ++b) {
      const auto& s = d.x[idx[b]];
      lengths[b] = static_cast<int64_t>(s.size());
      x.narrow(0, 0, static_cast<int64_t>(s.size())).select(1, b).copy_(torch::tensor(s));
    }
    const auto out = rnn->forward(embedding->forward(x), lengths);
    return head->forward(out.states.back().a);  // a<T_b> of the last layer, per sequence
  }
  torch::nn::Embedding embedding;
  RNN rnn;
  torch::nn::Linear head;
};
TORCH_MODULE(Model);

std::vector<int64_t> predict(Model& m, const Data& d) {
  torch::NoGradGuard g;
  std::vector<size_t> all(d.x.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const auto p = m->forward(d, all).argmax(1);
  return {p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + p.numel()};
}

/// The task: fit() plans the batches (SentenceTask), steps the optimizer, evaluates, keeps
/// best.pt/last.pt and resumes.
class MajorityTask : public train::SentenceTask {
 public:
  MajorityTask(const Config& c, Data train, Data valid)
      : SentenceTask(c.train, lengths(train)),
        c_(c),
        train_(std::move(train)),
        valid_(std::move(valid)),
        model_(c) {}
  torch::nn::Module& model() override { return *model_; }
  std::string unit() const override { return "seq"; }
  std::string app_name() const override { return "majority"; }
  std::string architecture() const override { return c_.architecture(); }
  train::BatchLoss train_on(const std::vector<size_t>& idx) override {
    std::vector<int64_t> y;
    for (auto i : idx) y.push_back(train_.y[i]);
    const auto loss =
        torch::nn::functional::cross_entropy(model_->forward(train_, idx), torch::tensor(y));
    return {loss, static_cast<int64_t>(idx.size())};
  }
  train::Metrics evaluate() override {
    const auto r = train::classification_report(valid_.y, predict(model_, valid_), 2);
    return {{{"val_accuracy", r.accuracy}, {"val_macro_f1", r.macro_f1}}, "val_accuracy", true};
  }

 private:
  static std::vector<size_t> lengths(const Data& d) {
    std::vector<size_t> l;
    for (const auto& s : d.x) l.push_back(s.size());
    return l;
  }
  const Config& c_;
  Data train_, valid_;
  Model model_;
};

int cmd_train(int argc, char** argv) {
  return train::train_command(
      argc, argv, "majority train", "Train the majority classifier",
      [](train::ConfigReader& config, const train::RunOptions& run) {
        const Config c = Config::read(config);
        train::setup_runtime(run, c.train.seed);
        MajorityTask task(c, make_data(c.num_train, c, c.data_seed),
                          make_data(c.num_valid, c, c.data_seed + 1));
        return train::exit_status(train::fit(task, c.train, run, config.resolved()));
      });
}

int cmd_eval(int argc, char** argv) {
  cxxopts::Options cli("majority eval", "Score a checkpoint on fresh sequences");
  train::add_model_options(cli);
  cli.add_options()("min-accuracy", "fail (exit 1) below this accuracy",
                    cxxopts::value<double>()->default_value("0"))("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  train::setup_runtime(train::run_options(args, ""), 0);
  const std::string path = train::required(args, "checkpoint");
  auto saved = train::open_saved_run(path, "majority");
  const Config c = Config::read(saved.config);
  Model model(c);
  train::load_weights(*model, saved.model, path);
  train::check_finite(*model, path);
  model->eval();
  const Data test = make_data(c.num_valid, c, c.data_seed + 2);  // unseen sequences
  const auto r = train::classification_report(test.y, predict(model, test), 2);
  std::cout << train::format_report(r, {"a", "b"});
  return r.accuracy >= args["min-accuracy"].as<double>() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return train::run_app("majority",
                        {{"train", "train on synthetic sequences", cmd_train},
                         {"eval", "score a checkpoint on fresh sequences", cmd_eval}},
                        argc, argv);
}

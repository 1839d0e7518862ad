// rnnkit-sentiment's training: texts encoded for the classifier, the classification and
// pretraining tasks fit() runs, one train/validation fit (fit_split), and the train command.
#include "internal.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <torch/nn/functional/loss.h>

#include <rnnkit/data/batching.h>
#include <rnnkit/data/embeddings.h>
#include <rnnkit/registry.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::sentiment {

using data::Vocab;
using torch::Tensor;
namespace F = torch::nn::functional;
namespace fs = std::filesystem;

namespace internal {

struct Encoded {
  std::vector<std::vector<int64_t>> x;
  std::vector<int64_t> y;
};

/// A label that hardly occurs is most likely a typo that would silently add a class.
void warn_rare_labels(const std::vector<data::LabelledText>& examples) {
  std::map<std::string, std::pair<int64_t, std::string>> seen;  // label -> count, first origin
  for (const auto& e : examples) {
    auto& [n, origin] = seen[e.label];
    if (n++ == 0) origin = e.origin;
  }
  const auto total = static_cast<double>(examples.size());
  int64_t most = 0;
  for (const auto& kv : seen) most = std::max(most, kv.second.first);
  for (const auto& [label, info] : seen) {
    // A handful where other labels have many (tiny data sets stay quiet), or a sliver of a large
    // set.
    if ((info.first < kRareLabelCount && info.first * 20 <= most) ||
        static_cast<double>(info.first) < kRareLabelShare * total) {
      train::warn(
          fmt::format("label '{}' occurs in only {} of {} training examples (first at "
                      "{}); a typo? every distinct label is a class",
                      label, info.first, examples.size(), info.second));
    }
  }
}

std::vector<std::string> sorted_labels(const std::vector<data::LabelledText>& examples) {
  std::set<std::string> s;
  for (const auto& e : examples) s.insert(e.label);
  return {s.begin(), s.end()};
}

Encoded encode(const SentimentConfig& c, const Vocab& vocab, const std::vector<std::string>& labels,
               const std::vector<data::LabelledText>& examples) {
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < labels.size(); ++i) index[labels[i]] = static_cast<int64_t>(i);
  Encoded e;
  for (const auto& ex : examples) {
    const auto it = index.find(ex.label);
    if (it == index.end()) {
      throw data::DataError(ex.origin, 0,
                            "label '" + ex.label + "' does not occur in the training data");
    }
    e.x.push_back(vocab.encode(c.tokenize(ex.text)));
    e.y.push_back(it->second);
  }
  return e;
}

/// Class probabilities of encoded texts, in batches, in their order.
Tensor predict_probs(ClassifierImpl& model, const std::vector<std::vector<int64_t>>& x,
                     const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<Tensor> out;
  for (const auto& idx : data::in_order_batches(x.size(), 256)) {
    train::throw_if_stopped();
    const auto p = data::pad_sequences(x, idx, Vocab::kPad);
    out.push_back(torch::softmax(model.forward(p.tokens.to(device), p.lengths), 1).cpu());
  }
  model.train(was_training);
  return torch::cat(out);
}

std::vector<int64_t> predicted_classes(const Tensor& probs) {
  const Tensor a = probs.argmax(1).contiguous();
  return {a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel()};
}

/// The length of every sequence, for the batch planner.
template <class Seq>
std::vector<size_t> lengths_of(const std::vector<Seq>& seqs) {
  std::vector<size_t> out;
  for (const auto& s : seqs) out.push_back(s.size());
  return out;
}

}  // namespace internal

namespace {
using namespace internal;

class SentimentTask : public train::SentenceTask {
 public:
  SentimentTask(const SentimentConfig& c, Vocab vocab, std::vector<std::string> labels,
                Encoded train, Encoded valid, Classifier model, torch::Device device)
      : SentenceTask(c.train, lengths_of(train.x)),
        c_(c),
        vocab_(std::move(vocab)),
        labels_(std::move(labels)),
        train_(std::move(train)),
        valid_(std::move(valid)),
        model_(std::move(model)),
        device_(device) {}
  torch::nn::Module& model() override { return *model_; }
  std::string unit() const override { return "sent"; }
  std::string app_name() const override { return "sentiment"; }
  std::string architecture() const override { return c_.architecture(vocab_.size(), labels_); }
  train::BatchLoss train_on(const std::vector<size_t>& idx) override {
    const auto p = data::pad_sequences(train_.x, idx, Vocab::kPad);
    const auto tokens = data::drop_words(p.tokens, c_.word_dropout, Vocab::kUnk);
    std::vector<int64_t> y;
    for (auto k : idx) y.push_back(train_.y[k]);
    const auto logits = model_->forward(tokens.to(device_), p.lengths);
    return {F::cross_entropy(logits, torch::tensor(y, torch::kLong).to(device_)),
            static_cast<int64_t>(idx.size())};
  }
  train::Metrics evaluate() override {
    const auto r = train::classification_report(
        valid_.y, predicted_classes(predict_probs(*model_, valid_.x, device_)),
        static_cast<int64_t>(labels_.size()));
    train::Metrics m;
    m.values = {{"val_accuracy", r.accuracy}, {"val_macro_f1", r.macro_f1}};
    m.main = "val_accuracy";
    m.higher_is_better = true;
    return m;
  }
  void save_state(torch::serialize::OutputArchive& a) const override {
    train::put_string(a, "vocab", vocab_.to_string());
    std::string l;
    for (const auto& x : labels_) l += x + "\n";
    train::put_string(a, "labels", l);
  }

 private:
  const SentimentConfig& c_;
  Vocab vocab_;
  std::vector<std::string> labels_;
  Encoded train_, valid_;
  Classifier model_;
  torch::Device device_;
};

static_assert(Vocab::kPad == 0, "BiLM::loss pads with 0");

class PretrainTask : public train::SentenceTask {
 public:
  PretrainTask(const SentimentConfig& c, const Vocab& vocab, const std::vector<std::string>& labels,
               const Encoded& train, const Encoded& valid, BiLM lm, torch::Device device)
      : SentenceTask(c.pretrain, lengths_of(train.x)),
        c_(c),
        vocab_(vocab),
        labels_(labels),
        train_(train),
        valid_(valid),
        lm_(std::move(lm)),
        device_(device) {}
  torch::nn::Module& model() override { return *lm_; }
  std::string unit() const override { return "sent"; }
  std::string app_name() const override { return "sentiment"; }
  std::string architecture() const override {
    return "pretrain " + c_.architecture(vocab_.size(), labels_);
  }
  train::BatchLoss train_on(const std::vector<size_t>& idx) override {
    const auto p = data::pad_sequences(train_.x, idx, Vocab::kPad);
    const auto l = lm_->loss(p.tokens.to(device_), p.lengths);
    return {l.count > 0 ? l.sum / static_cast<double>(l.count) : l.sum, l.count};
  }
  train::Metrics evaluate() override {
    // Reported, never selected on: the run keeps its last epoch. (fit() has switched to eval
    // mode without gradients.)
    double sum = 0;
    int64_t count = 0;
    for (const auto& idx : data::in_order_batches(valid_.x.size(), 256)) {
      train::throw_if_stopped();
      const auto p = data::pad_sequences(valid_.x, idx, Vocab::kPad);
      const auto l = lm_->loss(p.tokens.to(device_), p.lengths);
      sum += l.sum.item<double>();
      count += l.count;
    }
    train::Metrics m;
    m.values = {{"val_ppl", std::exp(sum / std::max<int64_t>(count, 1))}};
    m.main = "val_ppl";
    return m;
  }
  void save_state(torch::serialize::OutputArchive& a) const override {
    train::put_string(a, "vocab", vocab_.to_string());
  }

 private:
  const SentimentConfig& c_;
  const Vocab& vocab_;
  const std::vector<std::string>& labels_;
  const Encoded& train_;
  const Encoded& valid_;
  BiLM lm_;
  torch::Device device_;
};

}  // namespace

namespace internal {

/// Builds the vocabulary and model from `train`, and fits with `valid` as validation.
train::FitResult fit_split(const SentimentConfig& c, const std::vector<data::LabelledText>& train,
                           const std::vector<data::LabelledText>& valid,
                           const train::RunOptions& run, const torch::Device& device,
                           const std::string& config_text) {
  std::vector<std::vector<std::string>> tokens;
  for (const auto& e : train) tokens.push_back(c.tokenize(e.text));
  Vocab vocab = Vocab::build(tokens, static_cast<size_t>(c.max_vocab), c.min_count);
  auto labels = sorted_labels(train);
  auto tr = encode(c, vocab, labels, train);
  auto va = encode(c, vocab, labels, valid);
  Classifier model(c.model_options(vocab.size(), static_cast<int64_t>(labels.size())));
  if (!c.pretrained.empty()) {
    const auto found = data::load_pretrained(c.pretrained, vocab, model->embedding->weight,
                                             "model.embedding_size");
    if (!run.quiet)
      fmt::print(stderr, "pretrained vectors for {} of {} words\n", found, vocab.size());
  }
  model->to(device);
  if (!run.quiet) {
    fmt::print(stderr, "train: {} texts, valid: {} texts, classes: {}, vocabulary: {}\n",
               train.size(), valid.size(), labels.size(), vocab.size());
  }
  // The classifier resumes where it has begun; until then an interrupted pretraining resumes
  // in its own sub-run, RUN_DIR/pretrain.
  const train::RunOptions classifier_run = train::resumed_if_started(run);
  if (c.pretrain.epochs > 0 && !classifier_run.resume) {
    const train::RunOptions pre = train::sub_run(run, "pretrain");
    BiLM lm(model, static_cast<int64_t>(vocab.size()));
    lm->to(device);
    PretrainTask pretask(c, vocab, labels, tr, va, lm, device);
    if (!run.quiet)
      fmt::print(stderr, "pretraining a language model for {} epochs\n", c.pretrain.epochs);
    const auto r = train::fit(pretask, c.pretrain, pre, config_text);
    if (r.interrupted) return r;
  }
  SentimentTask task(c, std::move(vocab), std::move(labels), std::move(tr), std::move(va), model,
                     device);
  return train::fit(task, c.train, classifier_run, config_text);
}

}  // namespace internal

train::FitResult train(train::ConfigReader& config, const train::RunOptions& run) {
  const SentimentConfig c = SentimentConfig::read(config);
  const torch::Device device = train::setup_runtime(run, c.train.seed);
  auto train = c.read(c.train_paths, /*training=*/true);
  warn_rare_labels(train);
  std::vector<data::LabelledText> valid;
  if (!c.valid_path.empty()) {
    valid = c.read({c.valid_path});
  } else {
    // No validation file: hold out a seeded fraction of the training data.
    std::tie(train, valid) =
        data::hold_out(train, c.valid_fraction, static_cast<uint64_t>(c.train.seed));
  }
  if (!run.quiet) fmt::print(stderr, "{}", config.resolved());
  auto r = fit_split(c, train, valid, run, device, config.resolved());
  if (const auto best_path = train::test_checkpoint(run, r, c.test_path)) {
    std::vector<Loaded> best{load_model(*best_path, device)};
    const auto report = evaluate(best, {c.test_path}, device);
    r.test.values = {{"test_accuracy", report.accuracy}, {"test_macro_f1", report.macro_f1}};
    r.test.main = "test_accuracy";
    train::report_test(run, r.test);
  }
  return r;
}

}  // namespace rnnkit::sentiment

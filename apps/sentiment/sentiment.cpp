#include "sentiment.h"

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

const train::KeyTable& SentimentConfig::keys() {
  static const train::KeyTable table = [] {
    using namespace train;
    const SentimentConfig d;  // the defaults
    return KeyTable(
               {
                   choice(
                       "data", "format", d.format, {"tsv", "stsa", "class_files", "sst-trees"},
                       "`tsv` (`label<TAB>text`), `stsa` (`label text`), `class_files` (one file "
                       "per class), `sst-trees` (the Stanford Sentiment Treebank's PTB trees)"),
                   paths("data", "train", true,
                         "a file or an array of files (`class_files`: one per class)"),
                   strings("data", "classes",
                           "`class_files`: the label of each train file, in order"),
                   choice(
                       "data", "phrases", d.phrases ? "all" : "roots", {"roots", "all"},
                       "`sst-trees`: `all` trains on every labelled phrase (evaluation is on the "
                       "root sentences; needs `valid`)"),
                   choice("data", "labels", d.fine_labels ? "fine" : "binary", {"binary", "fine"},
                          "`sst-trees`: `binary` (SST-2, neutral dropped) or `fine` (SST-5, 0-4)"),
                   path("data", "valid", false,
                        "a validation file in the same format; without one, `valid_fraction` of "
                        "train is held out (seeded)"),
                   path("data", "test", false,
                        "a held-out file: when training ends `best.pt` scores it once and writes "
                        "`test.json` in the run dir"),
                   number("data", "valid_fraction", d.valid_fraction, 0.0, 0.9,
                          "also `cv`: the part of each fold's training data that selects the epoch "
                          "(0: score the last epoch)"),
                   integer("data", "folds", d.folds, 2, 100, "`cv`: the number of folds"),
                   flag("data", "label_last", d.label_last, "`tsv`: lines are `text<TAB>label`"),
                   flag("data", "lowercase", d.lowercase, "lowercase every word"),
                   train::encoding("data", "encoding", "the files' text encoding"),
                   integer("data", "max_vocab", d.max_vocab, 0, INT64_MAX,
                           "vocabulary size cap, specials included (0: no cap)"),
                   integer("data", "min_count", d.min_count, 1, INT64_MAX,
                           "words seen fewer times become `<unk>`"),
               })
        .with(common_keys())
        .with(rnn_keys("model", d.rnn))
        .with(KeyTable({
            integer("model", "embedding_size", d.embedding_size, 1, kMaxWidth,
                    "the word embeddings' width"),
            flag("model", "bidirectional", d.rnn.bidirectional(),
                 "read each text in both directions"),
            number("model", "dropout", d.rnn.dropout(), 0, 0.99,
                   "between layers and on the summary"),
            number("model", "embedding_dropout", d.embedding_dropout, 0, 0.99, "on the embeddings"),
            number("model", "word_dropout", d.word_dropout, 0, 0.99,
                   "training only: each word becomes `<unk>` with this probability"),
            choice("model", "pooling", d.pooling, {"last", "mean", "max"},
                   "`last` (the activation at the last real step; both directions' ends), "
                   "`mean`, `max` (over real steps)"),
            path("model", "pretrained", false,
                 "GloVe or word2vec text vectors (dimension = `embedding_size`)"),
        }));
  }();
  return table;
}

SentimentConfig SentimentConfig::read(train::ConfigReader& c) {
  auto k = [](const char* section, const char* name) -> const train::Key& {
    return keys().at(section, name);
  };
  SentimentConfig s;
  s.format = c.choice(k("data", "format"));
  s.train_paths = c.paths(k("data", "train"));
  if (s.train_paths.empty()) throw train::ConfigError(c.path() + ": [data] needs train");
  for (const char* key : {"phrases", "labels"}) {
    if (s.format != "sst-trees" && c.has_key("data", key)) {
      throw train::ConfigError(c.where("data", key) + ": only format = \"sst-trees\" has " + key +
                               " (the format is \"" + s.format + "\")");
    }
  }
  s.phrases = c.choice(k("data", "phrases")) == "all";
  s.fine_labels = c.choice(k("data", "labels")) == "fine";
  s.classes = c.strings(k("data", "classes"));
  if (s.format == "class_files" && s.classes.size() != s.train_paths.size()) {
    throw train::ConfigError(c.where("data", "classes") +
                             ": class_files needs one class per train file (" +
                             std::to_string(s.train_paths.size()) + " files, " +
                             std::to_string(s.classes.size()) + " classes)");
  }
  s.valid_path = c.path(k("data", "valid"));
  if (s.phrases && s.valid_path.empty()) {
    throw train::ConfigError(c.where("data", "phrases") +
                             ": training on phrases needs a valid file (a fraction held out of the "
                             "phrases would share words and sentences with training)");
  }
  s.test_path = c.path(k("data", "test"));
  s.valid_fraction = c.number(k("data", "valid_fraction"));
  s.folds = c.integer(k("data", "folds"));
  s.label_last = c.flag(k("data", "label_last"));
  s.lowercase = c.flag(k("data", "lowercase"));
  s.encoding = c.encoding(k("data", "encoding"));
  s.max_vocab = c.integer(k("data", "max_vocab"));
  s.min_count = c.integer(k("data", "min_count"));

  s.rnn = train::read_rnn_options(c, "model", s.rnn);
  s.embedding_size = c.integer(k("model", "embedding_size"));
  s.rnn.bidirectional(c.flag(k("model", "bidirectional")));
  s.rnn.dropout(c.number(k("model", "dropout")));
  s.embedding_dropout = c.number(k("model", "embedding_dropout"));
  s.word_dropout = c.number(k("model", "word_dropout"));
  s.pooling = c.choice(k("model", "pooling"));
  s.pretrained = c.path(k("model", "pretrained"));
  s.train = train::TrainOptions::read(c);
  train::TrainOptions pre = s.train;
  pre.epochs = 0;
  pre.early_stopping = 0;
  pre.schedule = "none";
  pre.max_minutes = 0;
  s.pretrain = train::TrainOptions::read(c, "pretrain", pre);
  if (s.pretrain.epochs > 0) {
    if (s.pretrain.early_stopping > 0 || s.pretrain.schedule == "plateau") {
      throw train::ConfigError(
          c.where("pretrain", "epochs") +
          ": pretraining runs a fixed number of epochs and keeps the last; "
          "early_stopping and schedule = \"plateau\" would select on the validation data");
    }
    if (s.rnn.bidirectional() && s.rnn.num_layers() > 1) {
      // Layer 2's forward pass reads layer 1's backward pass, which has read the next word.
      throw train::ConfigError(
          c.where("pretrain", "epochs") +
          ": a bidirectional language model of more than one layer would see the "
          "word it predicts; pretrain with num_layers = 1 or bidirectional = false");
    }
  }
  c.reject_unknown_keys();
  return s;
}

std::vector<data::LabelledText> SentimentConfig::read(const std::vector<std::string>& paths,
                                                      bool training) const {
  if (format == "class_files") {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (size_t i = 0; i < paths.size(); ++i) pairs.emplace_back(classes.at(i), paths[i]);
    return data::read_class_files(pairs, encoding);
  }
  // sst-trees: phrases train; evaluation is always on the root sentences.
  data::SSTOptions sst;
  sst.phrases = phrases && training;
  sst.binary = !fine_labels;
  std::vector<data::LabelledText> all;
  for (const auto& p : paths) {
    auto part = format == "sst-trees" ? data::read_sst_trees(p, sst, encoding)
                : format == "stsa"    ? data::read_stsa(p, encoding)
                                      : data::read_tsv(p, label_last, encoding);
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

std::vector<std::string> SentimentConfig::tokenize(const std::string& text) const {
  return data::WordTokenizer{lowercase, false}(text);
}

ClassifierOptions SentimentConfig::model_options(int64_t vocab_size, int64_t classes) const {
  return ClassifierOptions(vocab_size, classes, rnn)
      .embedding_size(embedding_size)
      .embedding_dropout(embedding_dropout)
      .pooling(parse_pooling(pooling));
}

std::string SentimentConfig::architecture(int64_t vocab_size,
                                          const std::vector<std::string>& labels) const {
  return fmt::format(
      "vocab={} classes={} cell={} embedding={} hidden={} layers={} bidirectional={} pooling={}",
      vocab_size, fmt::join(labels, ","), cell_label(rnn.cell(), rnn.cell_options()),
      embedding_size, rnn.hidden_size(), rnn.num_layers(), rnn.bidirectional(), pooling);
}

namespace {

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
  const bool classifier_started = fs::exists(fs::path(run.run_dir) / "last.pt");
  const bool resuming = run.resume || run.auto_resume;
  if (c.pretrain.epochs > 0 && !(resuming && classifier_started)) {
    // Its checkpoints live in <run_dir>/pretrain, so an interrupted pretraining resumes too.
    train::RunOptions pre = run;
    pre.run_dir = (fs::path(run.run_dir) / "pretrain").string();
    pre.resume = resuming && fs::exists(fs::path(pre.run_dir) / "last.pt");
    pre.auto_resume = false;
    BiLM lm(model, static_cast<int64_t>(vocab.size()));
    lm->to(device);
    PretrainTask pretask(c, vocab, labels, tr, va, lm, device);
    if (!run.quiet)
      fmt::print(stderr, "pretraining a language model for {} epochs\n", c.pretrain.epochs);
    const auto r = train::fit(pretask, c.pretrain, pre, config_text);
    if (r.interrupted) return r;
  }
  train::RunOptions classifier_run = run;
  classifier_run.resume = resuming && classifier_started;
  classifier_run.auto_resume = false;
  SentimentTask task(c, std::move(vocab), std::move(labels), std::move(tr), std::move(va), model,
                     device);
  return train::fit(task, c.train, classifier_run, config_text);
}

}  // namespace

Tensor Loaded::probabilities(const std::vector<std::string>& texts, const torch::Device& device) {
  std::vector<std::vector<int64_t>> x;
  for (const auto& t : texts) {
    auto ids = vocab.encode(config.tokenize(t));
    if (ids.empty()) ids.push_back(Vocab::kUnk);  // an empty line still gets an answer
    x.push_back(std::move(ids));
  }
  return predict_probs(*model, x, device);
}

Loaded load_model(const std::string& checkpoint, const torch::Device& device) {
  auto saved = train::open_saved_run(checkpoint, "sentiment");
  Loaded m;
  m.config = SentimentConfig::read(saved.config);
  m.vocab = Vocab::from_string(train::get_string(saved.task, "vocab"), checkpoint + "#vocab");
  std::istringstream labels(train::get_string(saved.task, "labels"));
  for (std::string l; std::getline(labels, l);) m.labels.push_back(l);
  m.model =
      Classifier(m.config.model_options(m.vocab.size(), static_cast<int64_t>(m.labels.size())));
  train::load_weights(*m.model, saved.model, checkpoint);
  train::check_finite(*m.model, checkpoint);
  m.model->to(device);
  m.model->eval();
  return m;
}

std::vector<Loaded> load_models(const std::vector<std::string>& checkpoints,
                                const torch::Device& device) {
  TORCH_CHECK(!checkpoints.empty(), "load_models: expected at least one checkpoint");
  std::vector<Loaded> models;
  for (const auto& path : checkpoints) {
    models.push_back(load_model(path, device));
    if (models.back().labels != models.front().labels) {
      throw train::CheckpointError(
          fmt::format("{}: labels {}, but {} has {}; an ensemble needs the same labels", path,
                      fmt::join(models.back().labels, ","), checkpoints.front(),
                      fmt::join(models.front().labels, ",")));
    }
  }
  return models;
}

Tensor ensemble_probabilities(std::vector<Loaded>& models, const std::vector<std::string>& texts,
                              const torch::Device& device) {
  TORCH_CHECK(!models.empty(), "ensemble_probabilities: expected at least one model");
  Tensor sum = models.front().probabilities(texts, device);
  for (size_t i = 1; i < models.size(); ++i) sum = sum + models[i].probabilities(texts, device);
  return sum / static_cast<double>(models.size());
}

train::Json classification_json(const std::string& text, const torch::Tensor& probabilities,
                                const std::vector<std::string>& labels) {
  TORCH_CHECK(
      probabilities.dim() == 1 && probabilities.size(0) == static_cast<int64_t>(labels.size()),
      "classification_json: expected probabilities [", labels.size(), "], got ",
      probabilities.sizes());
  const auto p = probabilities.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* q = p.data_ptr<double>();
  train::Json by_label = train::Json::object();
  size_t best = 0;
  for (size_t c = 0; c < labels.size(); ++c) {
    by_label[labels[c]] = q[c];
    if (q[c] > q[best]) best = c;
  }
  return {{"text", text}, {"label", labels[best]}, {"probabilities", by_label}};
}

std::vector<train::Json> classify_json(std::vector<Loaded>& models,
                                       const std::vector<std::string>& texts,
                                       const torch::Device& device) {
  const auto probs = ensemble_probabilities(models, texts, device).cpu();
  std::vector<train::Json> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    out.push_back(
        classification_json(texts[i], probs[static_cast<int64_t>(i)], models.front().labels));
  }
  return out;
}

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

double CrossValidation::mean_accuracy() const {
  return accuracy.empty()
             ? 0.0
             : std::accumulate(accuracy.begin(), accuracy.end(), 0.0) / accuracy.size();
}

double CrossValidation::std_accuracy() const {
  const double m = mean_accuracy();
  double v = 0;
  for (double a : accuracy) v += (a - m) * (a - m);
  return accuracy.size() > 1 ? std::sqrt(v / (accuracy.size() - 1)) : 0.0;
}

namespace {

ClassificationReport evaluate_examples(std::vector<Loaded>& models,
                                       const std::vector<data::LabelledText>& examples,
                                       const torch::Device& device) {
  TORCH_CHECK(!models.empty(), "evaluate: expected at least one model");
  const Loaded& m = models.front();
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < m.labels.size(); ++i) index[m.labels[i]] = static_cast<int64_t>(i);
  std::vector<std::string> texts;
  std::vector<int64_t> gold;
  for (const auto& e : examples) {
    const auto it = index.find(e.label);
    if (it == index.end())
      throw data::DataError(e.origin, 0, "label '" + e.label + "' is not one of the model's");
    texts.push_back(e.text);
    gold.push_back(it->second);
  }
  return train::classification_report(
      gold, predicted_classes(ensemble_probabilities(models, texts, device)),
      static_cast<int64_t>(m.labels.size()));
}

}  // namespace

CrossValidation cross_validate(train::ConfigReader& config, const train::RunOptions& run) {
  SentimentConfig c = SentimentConfig::read(config);
  const bool select = c.valid_fraction > 0;
  if (!select && (c.train.early_stopping > 0 || c.train.schedule == "plateau")) {
    // Without a validation part both would look at the held-out fold, which must stay unseen.
    fmt::print(stderr,
               "cv: data.valid_fraction = 0, so early_stopping and schedule = \"plateau\" are "
               "turned off: they would select on the test fold\n");
    c.train.early_stopping = 0;
    if (c.train.schedule == "plateau") c.train.schedule = "none";
  }
  const torch::Device device = train::setup_runtime(run, c.train.seed);
  if (c.phrases) {
    // Folds of phrases would put parts of a test sentence in training.
    throw train::ConfigError(config.path() +
                             ": cv splits sentences into folds; set data.phrases = \"roots\"");
  }
  const auto all = c.read(c.train_paths);
  warn_rare_labels(all);
  const auto idx = data::shuffled(all.size(), static_cast<uint64_t>(c.train.seed));
  auto fold = [&](int64_t k) {
    std::pair<std::vector<data::LabelledText>, std::vector<data::LabelledText>>
        split;  // train, test
    for (size_t i = 0; i < idx.size(); ++i) {
      (static_cast<int64_t>(i % c.folds) == k ? split.second : split.first).push_back(all[idx[i]]);
    }
    return split;
  };
  // Every fold is checked before the first trains: a fold that cannot work fails now, not
  // after hours, and leaves nothing on disk.
  if (static_cast<int64_t>(all.size()) < 2 * c.folds) {
    throw train::ConfigError(c.train_paths.front() + ": " + std::to_string(all.size()) +
                             " examples are too few for " + std::to_string(c.folds) +
                             "-fold cross-validation (data.folds); at least " +
                             std::to_string(2 * c.folds) + " are needed");
  }
  for (int64_t k = 0; k < c.folds; ++k) {
    const auto [train, test] = fold(k);
    const auto fit_part = select ? data::hold_out(train, c.valid_fraction,
                                                  static_cast<uint64_t>(c.train.seed + k + 1))
                                       .first
                                 : train;
    if (fit_part.empty()) {
      throw train::ConfigError(
          fmt::format("fold {}: no training examples left after data.valid_fraction = {}", k + 1,
                      c.valid_fraction));
    }
    const auto labels = sorted_labels(fit_part);
    if (labels.size() < 2) {
      throw train::ConfigError(
          fmt::format("fold {}: its training part holds only the label '{}'; a classifier "
                      "needs two classes (more examples, or fewer folds)",
                      k + 1, labels.front()));
    }
    for (const auto& e : test) {
      if (!std::binary_search(labels.begin(), labels.end(), e.label)) {
        throw data::DataError(
            e.origin, 0,
            fmt::format("label '{}' falls in test fold {} but not in its training "
                        "part; every class needs examples in every fold (fewer "
                        "folds, or more examples of '{}')",
                        e.label, k + 1, e.label));
      }
    }
  }
  CrossValidation cv;
  for (int64_t k = 0; k < c.folds; ++k) {
    const auto [train, test] = fold(k);
    train::RunOptions fold_run = run;
    fold_run.run_dir = (fs::path(run.run_dir) / ("fold" + std::to_string(k + 1))).string();
    fold_run.resume =
        (run.resume || run.auto_resume) && fs::exists(fs::path(fold_run.run_dir) / "last.pt");
    fold_run.auto_resume = false;
    ClassificationReport r;
    if (select) {
      // Model selection (best epoch, early stopping, plateau) on a part of the fold's training
      // data; the test fold is scored once, by the selected checkpoint.
      const auto [fit_part, valid_part] =
          data::hold_out(train, c.valid_fraction, static_cast<uint64_t>(c.train.seed + k + 1));
      const auto fit = fit_split(c, fit_part, valid_part, fold_run, device, config.resolved());
      if (fit.interrupted) {
        cv.interrupted = true;
        cv.signal = fit.signal;
        return cv;
      }
      std::vector<Loaded> best{
          load_model((fs::path(fold_run.run_dir) / "best.pt").string(), device)};
      r = evaluate_examples(best, test, device);
    } else {
      const auto fit = fit_split(c, train, test, fold_run, device, config.resolved());
      if (fit.interrupted) {
        cv.interrupted = true;
        cv.signal = fit.signal;
        return cv;
      }
      r.accuracy = fit.last.get("val_accuracy");
      r.macro_f1 = fit.last.get("val_macro_f1");
    }
    cv.accuracy.push_back(r.accuracy);
    cv.macro_f1.push_back(r.macro_f1);
    if (!run.quiet) {
      fmt::print(stderr, "fold {}/{}: accuracy {:.2f}%\n", k + 1, c.folds,
                 100 * cv.accuracy.back());
    }
  }
  return cv;
}

ClassificationReport evaluate(Loaded& m, const std::vector<std::string>& paths,
                              const torch::Device& device) {
  std::vector<Loaded> one{m};
  return evaluate(one, paths, device);
}

ClassificationReport evaluate(std::vector<Loaded>& models, const std::vector<std::string>& paths,
                              const torch::Device& device) {
  TORCH_CHECK(!models.empty(), "evaluate: expected at least one model");
  return evaluate_examples(models, models.front().config.read(paths), device);
}

}  // namespace rnnkit::sentiment

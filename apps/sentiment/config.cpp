// rnnkit-sentiment's configuration: its keys, reading them, the tokenizer and the model's
// options.
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

}  // namespace rnnkit::sentiment

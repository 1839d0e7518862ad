#pragma once
// rnnkit-sentiment: what its subcommands do, apart from the command line.
#include <string>
#include <vector>

#include <rnnkit/data/labelled.h>
#include <rnnkit/data/text.h>
#include <rnnkit/data/vocab.h>

#include <rnnkit/train/classification.h>
#include <rnnkit/train/config.h>
#include <rnnkit/train/json.h>
#include <rnnkit/train/model_config.h>
#include <rnnkit/train/train.h>
#include "model.h"

namespace rnnkit::sentiment {

struct SentimentConfig {
  // [data]
  std::string format = "tsv";            ///< tsv, stsa, class_files or sst-trees
  std::vector<std::string> train_paths;  ///< one or more files (class_files: one per class)
  std::vector<std::string> classes;      ///< class_files: the label of each train file
  std::string valid_path;                ///< optional
  std::string test_path;        ///< optional: scored once by the best checkpoint after training
  double valid_fraction = 0.1;  ///< held out of train (seeded) when there is no valid file
  int64_t folds = 10;           ///< the `cv` command's k
  bool label_last = false;      ///< tsv: text<TAB>label
  bool phrases = false;         ///< sst-trees: train on every labelled phrase (data.phrases = all)
  bool fine_labels = false;     ///< sst-trees: labels 0-4 (SST-5) instead of binary (SST-2)
  bool lowercase = true;
  data::Encoding encoding = data::Encoding::kUtf8;
  int64_t max_vocab = 0, min_count = 1;
  // [model]
  /// cell, hidden_size, ...; also bidirectional and dropout (on the summary too). input_size
  /// is the model's.
  RNNOptions rnn = RNNOptions("lstm", 0, 128).bidirectional(true).dropout(0.5);
  int64_t embedding_size = 100;
  double embedding_dropout = 0.0;
  double word_dropout = 0.0;  ///< training only: each word becomes <unk> with this probability
  std::string pooling = "last";
  std::string pretrained;  ///< GloVe / word2vec text file; empty: random embeddings

  train::TrainOptions train;
  /// [pretrain]: epochs > 0 first trains the embeddings and RNN as a language model on the
  /// training texts (each direction predicts its next word), then the classifier starts from
  /// them (Dai & Le 2015). Unset keys take [train]'s values; it runs a fixed number of epochs.
  train::TrainOptions pretrain;

  static SentimentConfig read(train::ConfigReader& config);
  /// Every key of [data] and [model] (config_keys.h), with this struct's defaults.
  static const train::KeyTable& keys();
  /// Reads files in this config's format; `training`: the training files (sst-trees with
  /// data.phrases = all gives every phrase of those, and the root sentences of any other).
  std::vector<data::LabelledText> read(const std::vector<std::string>& paths,
                                       bool training = false) const;
  std::vector<std::string> tokenize(const std::string& text) const;
  ClassifierOptions model_options(int64_t vocab_size, int64_t classes) const;
  std::string architecture(int64_t vocab_size, const std::vector<std::string>& labels) const;
};

using train::ClassificationReport;

/// A trained classifier with what it needs to read text.
struct Loaded {
  SentimentConfig config;
  data::Vocab vocab;
  std::vector<std::string> labels;
  Classifier model{nullptr};
  /// Class probabilities [N, C] of each text, in batches.
  torch::Tensor probabilities(const std::vector<std::string>& texts, const torch::Device& device);
};
Loaded load_model(const std::string& checkpoint, const torch::Device& device);

/// export: the classifier as an ONNX model at `path` (tokens and lengths -> probabilities) with its
/// vocabulary, labels and tokenizer in the metadata and a JSON file beside it (docs/export.md).
/// Built only with ONNX (libonnx-dev); throws onnx_export::ExportError.
void export_onnx(Loaded& m, const std::string& path);
/// The `export` command (--checkpoint, --output); in a build without ONNX it says so, exit 1.
int export_main(int argc, char** argv);

/// The mean of several classifiers' class probabilities [N, C] (an ensemble: models trained with
/// different seeds or recipes). They must share their labels, in order; their vocabularies may
/// differ.
torch::Tensor ensemble_probabilities(std::vector<Loaded>& models,
                                     const std::vector<std::string>& texts,
                                     const torch::Device& device);
/// One text's answer as predict --json, the server and rnnkit.load(...).classify give it:
/// {"text", "label", "probabilities": {label: p}} from its row [C] of ensemble_probabilities.
train::Json classification_json(const std::string& text, const torch::Tensor& probabilities,
                                const std::vector<std::string>& labels);
/// classification_json of each text, classified together.
std::vector<train::Json> classify_json(std::vector<Loaded>& models,
                                       const std::vector<std::string>& texts,
                                       const torch::Device& device);
/// load_model for each checkpoint, checking that their labels agree.
std::vector<Loaded> load_models(const std::vector<std::string>& checkpoints,
                                const torch::Device& device);

/// train: fits on the config's train split (validation: its valid file or a held-out fraction).
train::FitResult train(train::ConfigReader& config, const train::RunOptions& run);

/// k-fold cross-validation: trains k models, each scored on its held-out fold, which it never sees
/// in training or model selection. With data.valid_fraction > 0 that fraction of each fold's
/// training part selects the epoch (best checkpoint, early stopping, plateau); with 0 the
/// configured epochs run and the last is scored.
/// A label seen fewer than kRareLabelCount times while another is 20 times as common, or in less
/// than kRareLabelShare of the training examples, gets a warning: most likely a typo that adds a
/// class.
constexpr int64_t kRareLabelCount = 5;
constexpr double kRareLabelShare = 0.001;

struct CrossValidation {
  std::vector<double> accuracy, macro_f1;
  bool interrupted = false;  ///< stopped inside a fold (signal or --max-steps): --resume continues
  int signal = 0;            ///< the signal that stopped it, if one did
  double mean_accuracy() const;
  double std_accuracy() const;
};
CrossValidation cross_validate(train::ConfigReader& config, const train::RunOptions& run);

/// eval: the report of a checkpoint on labelled files in its config's format.
ClassificationReport evaluate(Loaded& m, const std::vector<std::string>& paths,
                              const torch::Device& device);
/// The same for an ensemble's mean probabilities.
ClassificationReport evaluate(std::vector<Loaded>& models, const std::vector<std::string>& paths,
                              const torch::Device& device);

}  // namespace rnnkit::sentiment

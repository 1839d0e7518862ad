#pragma once
#include <ATen/core/Generator.h>
// rnnkit-lm: what its subcommands do, separated from the command line.
#include <functional>
#include <string>
#include <vector>

#include <rnnkit/data/text.h>
#include <rnnkit/data/vocab.h>

#include <rnnkit/train/config.h>
#include <rnnkit/train/json.h>
#include <rnnkit/train/model_config.h>
#include <rnnkit/train/train.h>
#include "model.h"

namespace rnnkit::lm {

/// [data] and [model] of an lm config ([train] is train::TrainOptions).
struct LMConfig {
  // [data]
  std::string level;  ///< char or word
  std::string train_path, valid_path;
  std::string test_path;  ///< optional: scored once by the best checkpoint after training
  data::Encoding encoding = data::Encoding::kUtf8;
  bool lowercase = false;
  int64_t max_vocab = 0, min_count = 1;
  std::string batching = "stream";  ///< stream (truncated BPTT) or sentences
  int64_t bptt = 100;
  int64_t eval_batch_size = 1;  ///< 1: every token scored with the state carried through
  // [model]
  /// cell, hidden_size, ...; also dropout and variational_dropout (one dropout mask per sequence
  /// for all time steps). input_size is the model's.
  RNNOptions rnn{"lstm", 0, 256};
  int64_t embedding_size = 64;
  double embedding_dropout = 0;
  bool tie_weights = false;

  train::TrainOptions train;

  /// Reads and validates everything, then rejects unknown keys.
  static LMConfig read(train::ConfigReader& config);
  /// Every key of [data] and [model] (config_keys.h), with this struct's defaults.
  static const train::KeyTable& keys();
  LanguageModelOptions model_options(int64_t vocab_size) const;
  /// Identifies the model's shape for checkpoint checks.
  std::string architecture(int64_t vocab_size) const;
  std::vector<std::string> tokenize_file(const std::string& path) const;
  std::vector<std::string> tokenize_line(const std::string& line) const;
  std::string detokenize(const std::vector<std::string>& tokens) const;
};

/// The vocabulary the config asks for (max_vocab, min_count) over the training tokens.
data::Vocab build_vocab(const LMConfig& config, const std::vector<std::string>& train_tokens);
/// <eos> (the start context) followed by the ids of `tokens`: every token of a file is scored.
std::vector<int64_t> encode_stream(const data::Vocab& vocab,
                                   const std::vector<std::string>& tokens);

/// A trained model with its vocabulary and config, loaded from a checkpoint.
struct Loaded {
  LMConfig config;
  data::Vocab vocab;
  LanguageModel model{nullptr};
};
Loaded load_model(const std::string& checkpoint, const torch::Device& device);

/// export: the model as an ONNX graph at `path` that a caller steps (tokens, lengths and initial
/// states -> log-probabilities and final states), with the vocabulary and tokenizer in the
/// metadata and a JSON file beside it (docs/export.md). Built only with ONNX (libonnx-dev);
/// throws onnx_export::ExportError.
void export_onnx(Loaded& m, const std::string& path);
/// The `export` command (--checkpoint, --output); in a build without ONNX it says so, exit 1.
int export_main(int argc, char** argv);

/// train: fits from the config, writing checkpoints to run.run_dir.
train::FitResult train(train::ConfigReader& config, const train::RunOptions& run);

struct Perplexity {
  int64_t tokens = 0;
  double loss = 0;  ///< mean cross-entropy in nats per token
  double perplexity() const;
  double bits_per_token() const;
};
/// Mean cross-entropy over every token of `ids`, predicted from <eos> as the start and the
/// state carried through the whole stream (in `batch_size` parallel streams when > 1).
Perplexity evaluate_stream(LanguageModelImpl& model, const std::vector<int64_t>& ids, int64_t bptt,
                           int64_t batch_size, const torch::Device& device);

/// Temperatures below this are greedy decoding (as 0 is): dividing the logits by a tiny or
/// denormal temperature overflows to inf, whose softmax is NaN, and the limit of sampling as the
/// temperature goes to 0 is the argmax anyway. `sample --temperature` and the server's
/// `temperature` say so in their help.
inline constexpr double kGreedyBelowTemperature = 1e-6;

struct SampleOptions {
  std::string prompt;
  double temperature = 1.0;  ///< below kGreedyBelowTemperature: greedy
  int64_t top_k = 0;         ///< 0: the whole vocabulary
  bool greedy = false;
  int64_t max_length = 500;
  bool stop_at_eos = true;
  bool no_unk = true;
  uint64_t seed = 1;
};
/// Generated text (the prompt not included). `on_text`, when given, receives each piece as it is
/// generated (a character, or a word with its leading space), so a caller can print as it goes.
std::string sample(Loaded& m, const SampleOptions& options, const torch::Device& device,
                   const std::function<void(const std::string&)>& on_text = {});

/// One generation a token at a time, exactly as sample() runs it, with the model's forward pass
/// left to the caller: a server steps many generations in one batched forward pass (continuous
/// batching) and each still gives the text sample() gives for its seed.
class Sampler {
 public:
  Sampler(const Loaded& m, SampleOptions options);
  /// What to feed first ([T, 1]): <eos> and the prompt's tokens.
  const std::vector<int64_t>& prompt_ids() const { return prompt_; }
  /// Whether every token of a non-empty prompt is out of the vocabulary (read as <unk>).
  bool prompt_unknown() const { return prompt_unknown_; }
  /// Draws the next token from the model's logits [V] after the last token fed; false when the
  /// generation has ended (max_length tokens, or <eos> with stop_at_eos), with nothing drawn.
  bool next(torch::Tensor logits);
  int64_t last_token() const { return last_; }         ///< to feed next
  const std::string& piece() const { return piece_; }  ///< the text of the last token drawn
  double logprob() const { return logprob_; }  ///< its log-probability under the model (nats)
  const std::string& text() const { return text_; }
  int64_t produced() const { return produced_; }
  const SampleOptions& options() const { return o_; }

 private:
  const Loaded& m_;
  SampleOptions o_;
  std::vector<int64_t> prompt_;
  bool prompt_unknown_ = false, line_start_ = true;
  at::Generator gen_;
  int64_t last_ = 0, produced_ = 0;
  std::string piece_, text_;
  double logprob_ = 0;
};

/// The log-probability (nats) of one line, its tokens and <eos>, from a fresh <eos> context.
struct LineScore {
  double logprob = 0;
  int64_t tokens = 0;
  double perplexity() const;
};
LineScore score_line(Loaded& m, const std::string& line, const torch::Device& device);
/// A scored line as score --json, the server and rnnkit.load(...).score give it: {"text",
/// "tokens", "logprob", "perplexity"}, the perplexity null for a line with no token.
train::Json score_json(const std::string& text, const LineScore& s);

/// The share of <unk> among the tokens of `ids` (after the leading <eos>).
double unk_rate(const data::Vocab& vocab, const std::vector<int64_t>& ids);
/// Above this share of <unk> a file's perplexity is flattered: warn.
constexpr double kUnkWarning = 0.05;
/// Prints the <unk> rate of an evaluated file (unless quiet), and warns above kUnkWarning.
void report_unk_rate(const std::string& file, const data::Vocab& vocab,
                     const std::vector<int64_t>& ids, bool quiet);

}  // namespace rnnkit::lm

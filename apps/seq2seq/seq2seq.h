#pragma once
// rnnkit-seq2seq: what its subcommands do, separated from the command line (docs/seq2seq.md).
#include <string>
#include <vector>

#include <rnnkit/data/text.h>
#include <rnnkit/data/vocab.h>

#include <rnnkit/train/config.h>
#include <rnnkit/train/json.h>
#include <rnnkit/train/model_config.h>
#include <rnnkit/train/train.h>
#include "bleu.h"
#include "model.h"
#include "search.h"

namespace rnnkit::seq2seq {

/// [data], [model] and train.label_smoothing of a seq2seq config ([train] is train::TrainOptions).
struct Seq2SeqConfig {
  // [data]
  std::string train_source, train_target, valid_source, valid_target;
  std::string tokenize = "space";  ///< space (pre-tokenized), rnnkit (the apps' tokenizer), char
  bool lowercase = false;
  data::Encoding encoding = data::Encoding::kUtf8;
  int64_t min_count = 1, max_vocab = 0;
  bool shared_vocab = false;
  int64_t max_length = 100;  ///< tokens per side; longer training pairs are an error or dropped
  bool drop_long = false;
  // [model]
  /// cell, hidden_size, num_layers, dropout: the encoder's (per direction) and the decoder's.
  RNNOptions rnn{"gru", 0, 256};
  int64_t embedding_size = 256;
  bool bidirectional_encoder = true;
  std::string attention = "additive";
  bool input_feeding = false;
  bool tie_embeddings = false;
  double embedding_dropout = 0;
  // [train], beside TrainOptions
  double label_smoothing = 0;
  int64_t valid_beam = 1;  ///< validation BLEU: 1 is greedy

  train::TrainOptions train;

  static Seq2SeqConfig read(train::ConfigReader& config);
  static const train::KeyTable& keys();
  Seq2SeqOptions model_options(int64_t source_vocab, int64_t target_vocab) const;
  std::string architecture(int64_t source_vocab, int64_t target_vocab) const;
  /// A line's tokens under data.tokenize and data.lowercase (char: one per code point, with a
  /// space as "▁").
  std::vector<std::string> tokenize_line(const std::string& line) const;
  std::string detokenize(const std::vector<std::string>& tokens) const;
  /// What BLEU compares: the words of the text, or, for a character-level model, its characters
  /// (a date is one word; BLEU over it would say only right or wrong), space-separated.
  std::string bleu_text(const std::vector<std::string>& tokens) const;
  /// "multi-bleu" or, at the character level, "multi-bleu-chars".
  std::string bleu_label() const { return tokenize == "char" ? "multi-bleu-chars" : "multi-bleu"; }
};

/// Aligned sentence pairs, tokenized.
struct Parallel {
  std::vector<std::vector<std::string>> source, target;
  int64_t dropped = 0;  ///< pairs over max_length left out (data.drop_long)
};
/// Reads two aligned files. Different line counts, an empty line or (unless drop_long) a side over
/// max_length tokens: a DataError naming the file and the line.
Parallel read_parallel(const Seq2SeqConfig& c, const std::string& source_path,
                       const std::string& target_path);

struct Lexicon {
  data::Vocab source, target;
};

/// A trained model with its vocabularies and config, loaded from a checkpoint.
struct Loaded {
  Seq2SeqConfig config;
  Lexicon lexicon;
  Seq2Seq model{nullptr};
  torch::Device device{torch::kCPU};
};
Loaded load_model(const std::string& checkpoint, const torch::Device& device);

train::FitResult train(train::ConfigReader& config, const train::RunOptions& run);

struct TranslateOptions {
  int64_t beam = 5;  ///< 1: greedy
  double alpha = 1.0;
  int64_t n_best = 1;
  double max_length_factor = 3.0;  ///< at most factor × source tokens...
  int64_t max_length = 256;        ///< ...and at most this many
  bool allow_unk = false;
  bool keep_attention = false;
};
/// Checks what a user gives: std::invalid_argument naming the flag and its range.
void check_translate_options(const TranslateOptions& o);
inline constexpr int64_t kMostOutputTokens = 10000;
/// The most tokens translate() writes for a source of `source_tokens` tokens (without <eos>):
/// max_length_factor × the source, at least 1, at most max_length.
int64_t max_output_tokens(const TranslateOptions& o, int64_t source_tokens);

struct Translation {
  std::vector<std::string> source_tokens;
  std::vector<Hypothesis> hypotheses;  ///< n_best, best first
  std::string text(const Loaded& m, size_t k = 0) const;
};
/// Translates token lists (tokenized by the config) in batches.
std::vector<Translation> translate(Loaded& m, const std::vector<std::vector<std::string>>& sources,
                                   const TranslateOptions& o);

/// Mean cross-entropy per target token (with <eos>) of aligned pairs under teacher forcing.
double teacher_forced_loss(Seq2SeqImpl& model, const Lexicon& lx,
                           const std::vector<std::vector<std::string>>& source,
                           const std::vector<std::vector<std::string>>& target,
                           const torch::Device& device, int64_t* tokens = nullptr);

/// One JSON object per translation (`--json`): text, score, tokens, and with keep_attention the
/// attention matrix [target tokens + <eos>][source tokens + <eos>], its weights rounded to
/// `attention_decimals` places when that is 0 or more (the server's answers), whole otherwise.
train::Json translation_json(const Loaded& m, const Translation& t, bool attention,
                             int attention_decimals = -1);

/// Writes `dir/N.png` (gnuplot): the attention of hypothesis 0, source words across, target words
/// down; throws if gnuplot fails.
void plot_attention(const Loaded& m, const Translation& t, const std::string& dir, size_t n);

}  // namespace rnnkit::seq2seq

#pragma once
// rnnkit-ner: what its subcommands do, apart from the command line.
//
// Tags: the input files use one scheme (declared, or detected from the training file); the
// model works in one internal scheme (IOBES by default), and everything it outputs is converted
// back to the input's scheme. A [data] rename_tags list maps other tag sets onto entity tags
// first (the course's binary example: "1=I-NAME", "0=O"), and outputs map them back.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <rnnkit/data/conll.h>
#include <rnnkit/data/text.h>
#include <rnnkit/data/tokenize.h>
#include <rnnkit/data/vocab.h>

#include <rnnkit/train/config.h>
#include <rnnkit/train/json.h>
#include <rnnkit/train/model_config.h>
#include <rnnkit/train/train.h>
#include "conlleval.h"
#include "model.h"

namespace rnnkit::ner {

struct NerConfig {
  // [data]
  std::string train_path, valid_path;
  std::string test_path;        ///< optional: scored once by the best checkpoint after training
  std::string scheme = "auto";  ///< the files' scheme: auto, iob1, iob2, iobes, io
  /// Tags with transitions the scheme forbids (I-X after O in IOB2) are an error; with this they
  /// are rewritten as conlleval reads them, and a warning counts them.
  bool repair_tags = false;
  int64_t token_column = 0, tag_column = -1;
  std::vector<std::pair<std::string, std::string>> rename_tags;  ///< file tag -> entity tag
  bool lowercase = true,
       normalize_digits = true;  ///< word lookup keys (casing has its own feature)
  data::Encoding encoding = data::Encoding::kUtf8;
  int64_t min_count = 1, max_vocab = 0, max_word_length = 30;
  // [model]
  /// cell, hidden_size, ...; also dropout (on the features and states too). The model sets
  /// input_size and makes it bidirectional.
  RNNOptions rnn = RNNOptions("lstm", 0, 100).dropout(0.5);
  int64_t word_embedding_size = 100;
  std::string pretrained;  ///< GloVe / word2vec text file; empty: random embeddings
  std::string char_features = "cnn", char_cell = "lstm";
  int64_t char_embedding_size = 25, char_hidden_size = 25, char_kernel = 3, casing_size = 8;
  double word_dropout = 0.0;
  std::string decoder = "crf";
  std::string tag_scheme = "iobes";  ///< the internal scheme

  train::TrainOptions train;

  static NerConfig read(train::ConfigReader& config);
  /// Every key of [data] and [model] (config_keys.h), with this struct's defaults.
  static const train::KeyTable& keys();
  data::ConllOptions conll_options(bool has_tags = true) const;
  /// Reads a CoNLL file, renames its tags and checks them against `scheme` (repairing them, with
  /// a warning, under repair_tags).
  std::vector<data::TaggedSentence> read(const std::string& path, data::TagScheme scheme) const;
  std::string rename(const std::string& tag) const;    ///< file tag -> entity tag
  std::string unrename(const std::string& tag) const;  ///< entity tag -> file tag
};

/// The tag set of the internal scheme: "O", then every prefix of the scheme for every type.
std::vector<std::string> tag_inventory(const std::vector<std::string>& types,
                                       data::TagScheme scheme);
/// allowed [K, K], allowed_start [K], allowed_end [K] for a CRF over `tags`.
struct Constraints {
  torch::Tensor allowed, start, end;
};
Constraints constraints(const std::vector<std::string>& tags, data::TagScheme scheme);

/// Vocabularies and tag set: what turns words into model inputs, saved in every checkpoint.
struct Lexicon {
  data::Vocab words, chars;
  std::vector<std::string> tags;  ///< internal scheme
  data::TagScheme input_scheme = data::TagScheme::kIOB2, internal_scheme = data::TagScheme::kIOBES;
  bool lowercase = true, normalize_digits = true;
  int64_t max_word_length = 30;

  int64_t word_id(const std::string& token) const;
  int64_t tag_id(const std::string& tag) const;  ///< throws for a tag outside the inventory
};

/// A trained tagger with what it needs to read text.
/// A sentence tagged, with how sure the model is of its tags and of its entities.
struct Tagging {
  std::vector<std::string> tags;       ///< internal scheme
  std::vector<double> tag_confidence;  ///< per token: P(its tag) (CRF marginal, or softmax)
  std::vector<data::Span> spans;       ///< the entities: data::tags_to_spans(tags, internal)
  /// Per entity of spans, in order: P(exactly this span,
  /// this type) under the CRF (its tags fixed, no continuation), or the product of its tokens'
  /// softmax probabilities.
  std::vector<double> span_confidence;
};

struct Loaded {
  NerConfig config;
  Lexicon lexicon;
  Tagger model{nullptr};
  /// The best tags of each sentence (as tag_internal) with their confidences.
  std::vector<Tagging> tag_scored(const std::vector<std::vector<std::string>>& sentences,
                                  const torch::Device& device);
  /// The internal-scheme tags of each sentence.
  std::vector<std::vector<std::string>> tag_internal(
      const std::vector<std::vector<std::string>>& sentences, const torch::Device& device);
  /// The model's input for `sentences` (tokens), in their order, as prediction builds it: word
  /// ids, casing classes, and the characters of each word (at most max_word_length), padded to
  /// the batch's longest word.
  TaggerBatch batch(const std::vector<std::vector<std::string>>& sentences) const;
  /// Entity tags in the input scheme (before un-renaming).
  std::vector<std::vector<std::string>> tag(const std::vector<std::vector<std::string>>& sentences,
                                            const torch::Device& device);
};
Loaded load_model(const std::string& checkpoint, const torch::Device& device);

/// A tagged sentence as predict --json and the server give it: {"text", "entities": [{"start",
/// "end", "type", "text"}]}, offsets in code points of `text`, from `tokens` (byte offsets into
/// `text`) and their internal-scheme tags.
train::Json entities_json(const std::string& text, const std::vector<data::TextToken>& tokens,
                          const std::vector<std::string>& internal_tags, const Loaded& m);
/// The same with each entity's "confidence"; with `token_tags`, also "tokens": each token's
/// text, offsets, tag (in the input scheme, as the data names it) and "confidence".
train::Json entities_json(const std::string& text, const std::vector<data::TextToken>& tokens,
                          const Tagging& tagging, const Loaded& m, bool token_tags = false);

/// Pre-tokenized input as predict --conll and the server read it: the text is the tokens joined
/// by single spaces, each token's offsets into it.
std::pair<std::string, std::vector<data::TextToken>> joined_tokens(
    const std::vector<std::string>& tokens);
/// Each sentence's entities_json (with each token's tag under `token_tags`), tagged together:
/// what the server and rnnkit.load(...).tag answer. `tokens[i]` are byte offsets into `texts[i]`
/// (data::tokenize_ptb(text) for raw text, as predict does, or joined_tokens).
std::vector<train::Json> tag_json(Loaded& m, const std::vector<std::string>& texts,
                                  const std::vector<std::vector<data::TextToken>>& tokens,
                                  const torch::Device& device, bool token_tags);
/// The same with `token_tags` per sentence (a server's batch mixes requests).
std::vector<train::Json> tag_json(Loaded& m, const std::vector<std::string>& texts,
                                  const std::vector<std::vector<data::TextToken>>& tokens,
                                  const torch::Device& device, const std::vector<bool>& token_tags);

/// The model's shape, as checkpoints record it.
std::string architecture(const NerConfig& c, const Lexicon& lx);

/// export: the tagger as an ONNX model at `path` (words, casing, characters and lengths ->
/// emission scores, and the CRF's transitions) with its vocabularies, tags, scheme and
/// tokenizer in the metadata and a JSON file beside it (docs/export.md). Built only with ONNX
/// (libonnx-dev); throws onnx_export::ExportError.
void export_onnx(Loaded& m, const std::string& path);
/// The `export` command (--checkpoint, --output); in a build without ONNX it says so, exit 1.
int export_main(int argc, char** argv);

/// train: fits on the config's train file, selecting on entity F1 on its valid file.
train::FitResult train(train::ConfigReader& config, const train::RunOptions& run);

/// eval: conlleval's counts of a checkpoint on a CoNLL file in the model's input scheme.
Conlleval evaluate(Loaded& m, const std::string& path, const torch::Device& device);

}  // namespace rnnkit::ner

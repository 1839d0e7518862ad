// rnnkit-ner's configuration ([data], [model], [train] and the tag scheme's settings), the tag
// inventories and CRF constraints of each scheme, and the lexicon's lookups.
#include "internal.h"

#include <cmath>

#include <limits>

#include <rnnkit/data/tokenize.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <rnnkit/data/batching.h>
#include <rnnkit/data/embeddings.h>
#include <rnnkit/registry.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::ner {

using data::TagScheme;
using data::Vocab;
using torch::Tensor;

using data::TagScheme;
using data::Vocab;
using torch::Tensor;

const train::KeyTable& NerConfig::keys() {
  static const train::KeyTable table = [] {
    using namespace train;
    const NerConfig d;  // the defaults
    return KeyTable(
               {
                   path("data", "train", true, "the training sentences (a CoNLL column file)"),
                   path("data", "valid", true,
                        "the validation sentences (a CoNLL column file; selects the best epoch)"),
                   path("data", "test", false,
                        "held-out sentences: when training ends `best.pt` scores them once and "
                        "writes `test.json` in the run dir"),
                   choice("data", "scheme", d.scheme,
                          {"auto", "iob1", "iob2", "bio", "iobes", "io"},
                          "the files' tag scheme: `iob1`, `iob2` (`bio`), `iobes`, `io`, or `auto` "
                          "(detected from train)"),
                   flag(
                       "data", "repair_tags", d.repair_tags,
                       "tags with transitions the scheme forbids (I-X after O in IOB2) are an "
                       "error; with this they are rewritten as conlleval reads them, and a warning "
                       "counts them"),
                   integer("data", "token_column", d.token_column, 0, 1000, "0-based"),
                   integer("data", "tag_column", d.tag_column, -100, INT64_MAX,
                           "0-based; negative counts from the end"),
                   strings(
                       "data", "rename_tags",
                       "`[\"FILE_TAG=ENTITY_TAG\", ...]`: read other tag sets as entity tags (and "
                       "write them back)"),
                   flag("data", "lowercase", d.lowercase,
                        "word lookup keys are lowercased; case-sensitive keys fall back to the "
                        "lowercased word"),
                   flag("data", "normalize_digits", d.normalize_digits,
                        "word lookup keys have their digits as 0"),
                   train::encoding("data", "encoding", "the files' text encoding"),
                   integer("data", "min_count", d.min_count, 1, INT64_MAX,
                           "words of train seen fewer times become `<unk>`"),
                   integer("data", "max_vocab", d.max_vocab, 0, INT64_MAX,
                           "word vocabulary size cap (0: no cap)"),
                   integer("data", "max_word_length", d.max_word_length, 1, 10000,
                           "characters per word seen by the char features"),
               })
        .with(common_keys())
        .with(rnn_keys("model", d.rnn))
        .with(KeyTable({
            integer("model", "word_embedding_size", d.word_embedding_size, 1, kMaxWidth,
                    "the word embeddings' width"),
            path("model", "pretrained", false,
                 "GloVe / word2vec text file (dimension must equal `word_embedding_size`)"),
            choice("model", "char_features", d.char_features, {"none", "rnn", "cnn"},
                   "`cnn` (max over a convolution), `rnn` (final states of a char BiRNN), `none`"),
            cell("model", "char_cell", d.char_cell, "the char BiRNN's cell"),
            integer("model", "char_embedding_size", d.char_embedding_size, 1, kMaxWidth,
                    "the character embeddings' width"),
            integer("model", "char_hidden_size", d.char_hidden_size, 1, kMaxWidth,
                    "filters (cnn) or per direction (rnn)"),
            integer("model", "char_kernel", d.char_kernel, 1, 64, "the convolution's width (odd)"),
            integer("model", "casing_size", d.casing_size, 0, kMaxWidth,
                    "embedding size of the casing class (numeric, mainly numeric, lower, upper, "
                    "initial upper, contains digit, other); 0 = off"),
            number("model", "dropout", d.rnn.dropout(), 0, 0.99,
                   "on the inputs, between layers and before the output layer"),
            number("model", "word_dropout", d.word_dropout, 0, 0.99,
                   "probability of replacing a word by `<unk>` while training"),
            choice("model", "decoder", d.decoder, {"crf", "softmax"},
                   "`crf` (forward algorithm, Viterbi, scheme-constrained transitions) or "
                   "`softmax`"),
            choice("model", "tag_scheme", d.tag_scheme, {"iobes", "iob2", "bio"},
                   "the scheme the model works in; output is converted back"),
        }));
  }();
  return table;
}

NerConfig NerConfig::read(train::ConfigReader& c) {
  auto k = [](const char* section, const char* name) -> const train::Key& {
    return keys().at(section, name);
  };
  NerConfig s;
  s.train_path = c.path(k("data", "train"));
  s.valid_path = c.path(k("data", "valid"));
  if (s.train_path.empty() || s.valid_path.empty()) {
    throw train::ConfigError(c.path() + ": [data] needs train and valid (CoNLL files)");
  }
  s.test_path = c.path(k("data", "test"));
  s.scheme = c.choice(k("data", "scheme"));
  s.repair_tags = c.flag(k("data", "repair_tags"));
  s.token_column = c.integer(k("data", "token_column"));
  s.tag_column = c.integer(k("data", "tag_column"));
  for (const auto& r : c.strings(k("data", "rename_tags"))) {
    const auto eq = r.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == r.size()) {
      throw train::ConfigError(c.where("data", "rename_tags") +
                               ": expected entries \"FILE_TAG=ENTITY_TAG\", got '" + r + "'");
    }
    s.rename_tags.emplace_back(r.substr(0, eq), r.substr(eq + 1));
  }
  s.lowercase = c.flag(k("data", "lowercase"));
  s.normalize_digits = c.flag(k("data", "normalize_digits"));
  s.encoding = c.encoding(k("data", "encoding"));
  s.min_count = c.integer(k("data", "min_count"));
  s.max_vocab = c.integer(k("data", "max_vocab"));
  s.max_word_length = c.integer(k("data", "max_word_length"));

  s.rnn = train::read_rnn_options(c, "model", s.rnn);
  s.char_cell = c.cell(k("model", "char_cell"));
  s.word_embedding_size = c.integer(k("model", "word_embedding_size"));
  s.pretrained = c.path(k("model", "pretrained"));
  s.char_features = c.choice(k("model", "char_features"));
  s.char_embedding_size = c.integer(k("model", "char_embedding_size"));
  s.char_hidden_size = c.integer(k("model", "char_hidden_size"));
  s.char_kernel = c.integer(k("model", "char_kernel"));
  if (s.char_kernel % 2 == 0)
    throw train::ConfigError(c.where("model", "char_kernel") + ": must be odd, got " +
                             std::to_string(s.char_kernel));
  s.casing_size = c.integer(k("model", "casing_size"));
  s.rnn.dropout(c.number(k("model", "dropout")));
  s.word_dropout = c.number(k("model", "word_dropout"));
  s.decoder = c.choice(k("model", "decoder"));
  s.tag_scheme = c.choice(k("model", "tag_scheme"));
  s.train = train::TrainOptions::read(c);
  c.reject_unknown_keys();
  return s;
}

data::ConllOptions NerConfig::conll_options(bool has_tags) const {
  data::ConllOptions o;
  o.token_column = static_cast<int>(token_column);
  o.tag_column = static_cast<int>(tag_column);
  o.encoding = encoding;
  o.has_tags = has_tags;
  return o;
}

std::string NerConfig::rename(const std::string& tag) const {
  for (const auto& [from, to] : rename_tags)
    if (tag == from) return to;
  return tag;
}

std::string NerConfig::unrename(const std::string& tag) const {
  for (const auto& [from, to] : rename_tags)
    if (tag == to) return from;
  return tag;
}

namespace internal {

std::vector<data::TaggedSentence> read_renamed(const NerConfig& c, const std::string& path) {
  auto sentences = data::read_conll(path, c.conll_options());
  for (auto& s : sentences)
    for (auto& t : s.tags) t = c.rename(t);
  return sentences;
}

}  // namespace internal

std::vector<data::TaggedSentence> NerConfig::read(const std::string& path, TagScheme scheme) const {
  auto sentences = internal::read_renamed(*this, path);
  if (repair_tags) {
    if (const auto n = data::repair_tags(sentences, scheme); n > 0) {
      fmt::print(stderr,
                 "warning: {}: repaired {} tag(s) that broke the {} scheme (data.repair_tags)\n",
                 path, n, data::to_string(scheme));
    }
  }
  data::check_tags(sentences, scheme, path);
  return sentences;
}

std::vector<std::string> tag_inventory(const std::vector<std::string>& types, TagScheme scheme) {
  std::vector<std::string> prefixes;
  switch (scheme) {
    case TagScheme::kIOBES:
      prefixes = {"B", "I", "E", "S"};
      break;
    case TagScheme::kIO:
      prefixes = {"I"};
      break;
    default:
      prefixes = {"B", "I"};
  }
  std::vector<std::string> tags{"O"};
  for (const auto& t : types)
    for (const auto& p : prefixes) tags.push_back(p + "-" + t);
  return tags;
}

Constraints constraints(const std::vector<std::string>& tags, TagScheme scheme) {
  const auto K = static_cast<int64_t>(tags.size());
  Constraints c{torch::zeros({K, K}, torch::kBool), torch::zeros({K}, torch::kBool),
                torch::zeros({K}, torch::kBool)};
  auto a = c.allowed.accessor<bool, 2>();
  auto s = c.start.accessor<bool, 1>();
  auto e = c.end.accessor<bool, 1>();
  for (int64_t j = 0; j < K; ++j) {
    s[j] = data::allowed_transition("", tags[j], scheme);
    e[j] = data::allowed_transition(tags[j], "", scheme);
    for (int64_t i = 0; i < K; ++i) a[i][j] = data::allowed_transition(tags[i], tags[j], scheme);
  }
  return c;
}

int64_t Lexicon::word_id(const std::string& token) const {
  const auto key = data::WordTokenizer{lowercase, normalize_digits}.normalize(token);
  if (words.contains(key)) return words.id(key);
  if (!lowercase) {  // the fallback: the lowercased word
    const auto lower = data::WordTokenizer{true, normalize_digits}.normalize(token);
    if (words.contains(lower)) return words.id(lower);
  }
  return Vocab::kUnk;
}

int64_t Lexicon::tag_id(const std::string& tag) const {
  const auto it = std::find(tags.begin(), tags.end(), tag);
  if (it == tags.end())
    throw std::invalid_argument("tag '" + tag + "' is not one of the model's tags");
  return it - tags.begin();
}

}  // namespace rnnkit::ner

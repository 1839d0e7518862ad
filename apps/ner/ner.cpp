#include "ner.h"

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

namespace {

std::vector<data::TaggedSentence> read_renamed(const NerConfig& c, const std::string& path) {
  auto sentences = data::read_conll(path, c.conll_options());
  for (auto& s : sentences)
    for (auto& t : s.tags) t = c.rename(t);
  return sentences;
}

}  // namespace

std::vector<data::TaggedSentence> NerConfig::read(const std::string& path, TagScheme scheme) const {
  auto sentences = read_renamed(*this, path);
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

namespace {

struct Encoded {
  std::vector<int64_t> words, casing, tags;
  std::vector<std::vector<int64_t>> chars;
};

Encoded encode(const Lexicon& lx, const std::vector<std::string>& tokens,
               const std::vector<std::string>& internal_tags = {}) {
  Encoded e;
  for (const auto& tok : tokens) {
    e.words.push_back(lx.word_id(tok));
    e.casing.push_back(casing(tok));
    auto cps = data::split_code_points(tok);
    if (static_cast<int64_t>(cps.size()) > lx.max_word_length)
      cps.resize(static_cast<size_t>(lx.max_word_length));
    e.chars.push_back(lx.chars.encode(cps));
  }
  for (const auto& t : internal_tags) e.tags.push_back(lx.tag_id(t));
  return e;
}

TaggerBatch make_batch(const std::vector<Encoded>& data, const std::vector<size_t>& idx) {
  const auto B = static_cast<int64_t>(idx.size());
  int64_t T = 0, W = 0, L = 1;
  for (auto i : idx) {
    T = std::max<int64_t>(T, static_cast<int64_t>(data[i].words.size()));
    W += static_cast<int64_t>(data[i].words.size());
    for (const auto& c : data[i].chars) L = std::max<int64_t>(L, static_cast<int64_t>(c.size()));
  }
  const bool tagged = !data[idx[0]].tags.empty();
  std::vector<int64_t> words(B * T, 0), cas(B * T, kCasingPad), tags(B * T, 0), lengths(B),
      chars(W * L, 0), char_lengths, positions;
  int64_t w = 0;
  for (int64_t b = 0; b < B; ++b) {
    const auto& e = data[idx[b]];
    lengths[b] = static_cast<int64_t>(e.words.size());
    for (int64_t t = 0; t < lengths[b]; ++t) {
      words[b * T + t] = e.words[t];
      cas[b * T + t] = e.casing[t];
      if (tagged) tags[b * T + t] = e.tags[t];
      const auto& c = e.chars[t];
      std::copy(c.begin(), c.end(), chars.begin() + w * L);
      char_lengths.push_back(
          std::max<int64_t>(1, static_cast<int64_t>(c.size())));  // "" -> one <pad>
      positions.push_back(b * T + t);
      ++w;
    }
  }
  auto t = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); };
  TaggerBatch batch{t(words).view({B, T}), t(cas).view({B, T}), t(lengths), t(chars).view({W, L}),
                    t(char_lengths),       t(positions),        {}};
  if (tagged) batch.tags = t(tags).view({B, T});
  return batch;
}

/// Runs body(idx, batch) over the non-empty sentences of `data` in batches of up to 64 of
/// similar length (sorted, so that a batch pads little; idx are their positions in `data`), with
/// the model in eval mode.
template <class Body>
void for_each_batch(TaggerImpl& model, const std::vector<Encoded>& data,
                    const torch::Device& device, Body body) {
  struct EvalMode {
    TaggerImpl& model;
    bool was_training = model.is_training();
    ~EvalMode() { model.train(was_training); }
  } mode{model};
  model.eval();
  std::vector<size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return data[a].words.size() < data[b].words.size(); });
  for (size_t a = 0; a < order.size(); a += 64) {
    std::vector<size_t> idx;
    for (size_t i = a; i < std::min(order.size(), a + 64); ++i) {
      if (!data[order[i]].words.empty()) idx.push_back(order[i]);
    }
    if (!idx.empty()) body(idx, make_batch(data, idx).to_device(device));
  }
}

/// The tag ids of every sentence (empty for an empty one), in the input order.
std::vector<std::vector<int64_t>> decode_all(TaggerImpl& model, const std::vector<Encoded>& data,
                                             const torch::Device& device) {
  std::vector<std::vector<int64_t>> out(data.size());
  for_each_batch(model, data, device, [&](const std::vector<size_t>& idx, const TaggerBatch& b) {
    train::throw_if_stopped();
    const auto paths = model.decode(b);
    for (size_t k = 0; k < idx.size(); ++k) out[idx[k]] = paths[k];
  });
  return out;
}

std::vector<std::string> tag_names(const Lexicon& lx, const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  for (auto i : ids) out.push_back(lx.tags.at(static_cast<size_t>(i)));
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

TaggerOptions model_options(const NerConfig& c, const Lexicon& lx) {
  return TaggerOptions(lx.words.size(), lx.chars.size(), static_cast<int64_t>(lx.tags.size()),
                       c.rnn)
      .word_embedding_size(c.word_embedding_size)
      .char_features(parse_char_features(c.char_features))
      .char_cell(c.char_cell)
      .char_embedding_size(c.char_embedding_size)
      .char_hidden_size(c.char_hidden_size)
      .char_kernel(c.char_kernel)
      .casing_size(c.casing_size)
      .decoder(parse_decoder(c.decoder));
}

Tagger build_model(const NerConfig& c, const Lexicon& lx) {
  Tagger model(model_options(c, lx));
  if (model->crf) {
    const auto k = constraints(lx.tags, lx.internal_scheme);
    model->crf->set_constraints(k.allowed, k.start, k.end);
  }
  return model;
}

std::vector<size_t> sentence_lengths(const std::vector<Encoded>& sentences) {
  std::vector<size_t> out;
  for (const auto& s : sentences) out.push_back(s.words.size());
  return out;
}

class NerTask : public train::SentenceTask {
 public:
  NerTask(const NerConfig& c, Lexicon lexicon, std::vector<Encoded> train,
          std::vector<Encoded> valid, std::vector<std::vector<std::string>> valid_gold,
          Tagger model, torch::Device device)
      : SentenceTask(c.train, sentence_lengths(train)),
        c_(c),
        lx_(std::move(lexicon)),
        train_(std::move(train)),
        valid_(std::move(valid)),
        valid_gold_(std::move(valid_gold)),
        model_(std::move(model)),
        device_(device) {}
  torch::nn::Module& model() override { return *model_; }
  std::string unit() const override { return "sent"; }
  std::string app_name() const override { return "ner"; }
  std::string architecture() const override { return ner::architecture(c_, lx_); }
  train::BatchLoss train_on(const std::vector<size_t>& idx) override {
    auto batch = make_batch(train_, idx);
    // Word dropout: the model learns what to do with words it has not seen.
    batch.words = data::drop_words(batch.words, c_.word_dropout, Vocab::kUnk);
    return {model_->loss(batch.to_device(device_)), static_cast<int64_t>(idx.size())};
  }
  train::Metrics evaluate() override {
    const auto paths = decode_all(*model_, valid_, device_);
    Conlleval ev;
    for (size_t i = 0; i < paths.size(); ++i) {
      ev.add(valid_gold_[i],
             data::convert_tags(tag_names(lx_, paths[i]), lx_.internal_scheme, lx_.input_scheme));
    }
    train::Metrics m;
    m.values = {{"val_f1", ev.f1()},
                {"val_precision", ev.precision()},
                {"val_recall", ev.recall()},
                {"val_accuracy", ev.accuracy()}};
    m.main = "val_f1";
    m.higher_is_better = true;
    return m;
  }
  void save_state(torch::serialize::OutputArchive& a) const override {
    train::put_string(a, "words", lx_.words.to_string());
    train::put_string(a, "chars", lx_.chars.to_string());
    train::put_string(a, "tags", join(lx_.tags));
    train::put_string(a, "input_scheme", data::to_string(lx_.input_scheme));
  }

 private:
  const NerConfig& c_;
  Lexicon lx_;
  std::vector<Encoded> train_, valid_;
  std::vector<std::vector<std::string>> valid_gold_;
  Tagger model_;
  torch::Device device_;
};

}  // namespace

train::FitResult train(train::ConfigReader& config, const train::RunOptions& run) {
  const NerConfig c = NerConfig::read(config);
  const torch::Device device = train::setup_runtime(run, c.train.seed);
  Lexicon lx;
  lx.lowercase = c.lowercase;
  lx.normalize_digits = c.normalize_digits;
  lx.max_word_length = c.max_word_length;
  lx.internal_scheme = data::parse_tag_scheme(c.tag_scheme);
  if (c.scheme == "auto") {
    const auto guess = data::guess_tag_scheme(read_renamed(c, c.train_path), c.train_path);
    lx.input_scheme = guess.scheme;
    if (!run.quiet) {
      fmt::print(stderr, "tag scheme: {} (detected: {}; set data.scheme to declare it)\n",
                 data::to_string(guess.scheme), guess.reason);
    }
  } else {
    lx.input_scheme = data::parse_tag_scheme(c.scheme);
  }
  const auto train = c.read(c.train_path, lx.input_scheme);
  const auto valid = c.read(c.valid_path, lx.input_scheme);

  std::set<std::string> types;
  std::vector<std::vector<std::string>> keys, chars;
  const data::WordTokenizer norm{c.lowercase, c.normalize_digits};
  for (const auto& s : train) {
    for (const auto& span : data::tags_to_spans(s.tags, lx.input_scheme)) types.insert(span.type);
    std::vector<std::string> k;
    for (const auto& tok : s.tokens) {
      k.push_back(norm.normalize(tok));
      chars.push_back(data::split_code_points(tok));
    }
    keys.push_back(std::move(k));
  }
  if (types.empty())
    throw data::DataError(c.train_path, 0, "no entity in the training file: every tag is O");
  lx.words = Vocab::build(keys, static_cast<size_t>(c.max_vocab), c.min_count);
  lx.chars = Vocab::build(chars);
  lx.tags = tag_inventory({types.begin(), types.end()}, lx.internal_scheme);

  std::vector<Encoded> tr, va;
  std::vector<std::vector<std::string>> valid_gold;
  for (const auto& s : train)
    tr.push_back(
        encode(lx, s.tokens, data::convert_tags(s.tags, lx.input_scheme, lx.internal_scheme)));
  for (const auto& s : valid) {
    va.push_back(encode(lx, s.tokens));
    valid_gold.push_back(s.tags);
  }
  Tagger model = build_model(c, lx);
  if (!c.pretrained.empty()) {
    const auto found = data::load_pretrained(c.pretrained, lx.words, model->words->weight,
                                             "model.word_embedding_size");
    if (!run.quiet)
      fmt::print(stderr, "pretrained vectors for {} of {} words\n", found, lx.words.size());
  }
  model->to(device);
  if (!run.quiet) {
    fmt::print(stderr, "{}", config.resolved());
    fmt::print(stderr,
               "train: {} sentences, valid: {} sentences, tags: {} ({} in the files, {} inside), "
               "vocabulary: {} words, {} characters, parameters: {}\n",
               tr.size(), va.size(), lx.tags.size(), data::to_string(lx.input_scheme),
               data::to_string(lx.internal_scheme), lx.words.size(), lx.chars.size(), [&] {
                 int64_t n = 0;
                 for (const auto& p : model->parameters()) n += p.numel();
                 return n;
               }());
  }
  NerTask task(c, std::move(lx), std::move(tr), std::move(va), std::move(valid_gold), model,
               device);
  auto r = train::fit(task, c.train, run, config.resolved());
  if (const auto best_path = train::test_checkpoint(run, r, c.test_path)) {
    auto best = load_model(*best_path, device);
    const auto ev = evaluate(best, c.test_path, device);
    r.test.values = {
        {"test_f1", ev.f1()}, {"test_precision", ev.precision()}, {"test_recall", ev.recall()}};
    r.test.main = "test_f1";
    train::report_test(run, r.test);
  }
  return r;
}

std::string architecture(const NerConfig& c, const Lexicon& lx) {
  return fmt::format(
      "words={} chars={} tags={} cell={} embedding={} char={}/{}/{}/{} casing={} hidden={} "
      "layers={} decoder={}",
      lx.words.size(), lx.chars.size(), fmt::join(lx.tags, ","),
      cell_label(c.rnn.cell(), c.rnn.cell_options()), c.word_embedding_size, c.char_features,
      c.char_cell, c.char_embedding_size, c.char_hidden_size, c.casing_size, c.rnn.hidden_size(),
      c.rnn.num_layers(), c.decoder);
}

TaggerBatch Loaded::batch(const std::vector<std::vector<std::string>>& sentences) const {
  TORCH_CHECK(!sentences.empty(), "ner: expected at least one sentence");
  std::vector<Encoded> enc;
  for (const auto& s : sentences) {
    TORCH_CHECK(!s.empty(), "ner: expected sentences of at least one token");
    enc.push_back(encode(lexicon, s));
  }
  std::vector<size_t> idx(enc.size());
  std::iota(idx.begin(), idx.end(), 0);
  return make_batch(enc, idx);
}

std::vector<std::vector<std::string>> Loaded::tag_internal(
    const std::vector<std::vector<std::string>>& sentences, const torch::Device& device) {
  std::vector<Encoded> enc;
  for (const auto& s : sentences) enc.push_back(encode(lexicon, s));
  std::vector<std::vector<std::string>> out;
  for (const auto& p : decode_all(*model, enc, device)) out.push_back(tag_names(lexicon, p));
  return out;
}

std::vector<Tagging> Loaded::tag_scored(const std::vector<std::vector<std::string>>& sentences,
                                        const torch::Device& device) {
  torch::NoGradGuard no_grad;
  std::vector<Encoded> enc;
  for (const auto& s : sentences) enc.push_back(encode(lexicon, s));
  std::vector<Tagging> out(sentences.size());
  const bool crf = model->options.decoder() == Decoder::kCRF;
  const auto K = static_cast<int64_t>(lexicon.tags.size());
  for_each_batch(
      *model, enc, device, [&](const std::vector<size_t>& idx, const TaggerBatch& batch) {
        const auto scores = model->forward(batch);  // [B, T, K]
        std::vector<std::vector<int64_t>> paths;
        torch::Tensor probs;  // [B, T, K]
        if (crf) {
          paths = model->crf->decode(scores, batch.lengths);
          probs = model->crf->marginals(scores, batch.lengths);
        } else {
          probs = torch::softmax(scores, 2);
          const auto best = scores.argmax(2).cpu().contiguous();
          for (size_t k = 0; k < idx.size(); ++k) {
            const auto* p = best[static_cast<int64_t>(k)].data_ptr<int64_t>();
            paths.emplace_back(p, p + enc[idx[k]].words.size());
          }
        }
        const auto p = probs.to(torch::kCPU, torch::kDouble).contiguous();
        const auto log_z =
            crf ? model->crf->log_partition(scores, batch.lengths).cpu() : torch::Tensor();
        for (size_t k = 0; k < idx.size(); ++k) {
          const auto b = static_cast<int64_t>(k);
          Tagging& g = out[idx[k]];
          g.tags = tag_names(lexicon, paths[k]);
          const auto pb = p[b];
          const auto pa = pb.accessor<double, 2>();
          for (size_t t = 0; t < paths[k].size(); ++t) {
            g.tag_confidence.push_back(pa[static_cast<int64_t>(t)][paths[k][t]]);
          }
          g.spans = data::tags_to_spans(g.tags, lexicon.internal_scheme);
          const auto& spans = g.spans;
          if (spans.empty()) continue;
          if (!crf) {
            for (const auto& sp : spans) {
              double c = 1;
              for (size_t t = sp.start; t < sp.end; ++t) c *= g.tag_confidence[t];
              g.span_confidence.push_back(c);
            }
            continue;
          }
          // P(span) = Z(paths with the span's tags fixed and no continuation) / Z: one constrained
          // forward pass per entity, all of a sentence's entities in one batch.
          const auto n = static_cast<int64_t>(paths[k].size());
          const auto e = scores[b].narrow(0, 0, n);  // [n, K]
          std::vector<torch::Tensor> constrained;
          for (const auto& sp : spans) {
            auto allowed = torch::ones({n, K}, torch::kBool);
            for (size_t t = sp.start; t < sp.end; ++t) {
              allowed[static_cast<int64_t>(t)].fill_(false);
              allowed[static_cast<int64_t>(t)][paths[k][t]] = true;
            }
            auto forbid = [&](int64_t t, std::initializer_list<const char*> prefixes) {
              for (int64_t j = 0; j < K; ++j) {
                for (const char* pre : prefixes) {
                  if (lexicon.tags[static_cast<size_t>(j)] == pre + sp.type) allowed[t][j] = false;
                }
              }
            };
            if (static_cast<int64_t>(sp.end) < n)
              forbid(static_cast<int64_t>(sp.end), {"I-", "E-"});
            if (sp.start > 0 && g.tags[sp.start].rfind("I-", 0) == 0) {
              forbid(static_cast<int64_t>(sp.start) - 1, {"I-", "B-"});
            }
            constrained.push_back(e.masked_fill(allowed.logical_not().to(e.device()),
                                                -std::numeric_limits<double>::infinity()));
          }
          const auto stacked = torch::stack(constrained);  // [E, n, K]
          const auto lengths = torch::full({stacked.size(0)}, n, torch::kLong);
          const auto log_zc =
              model->crf->log_partition(stacked, lengths).to(torch::kCPU, torch::kDouble);
          const double lz = log_z[b].item<double>();
          for (int64_t i = 0; i < stacked.size(0); ++i) {
            g.span_confidence.push_back(std::exp(log_zc[i].item<double>() - lz));
          }
        }
      });
  return out;
}

std::vector<std::vector<std::string>> Loaded::tag(
    const std::vector<std::vector<std::string>>& sentences, const torch::Device& device) {
  auto out = tag_internal(sentences, device);
  for (auto& t : out) t = data::convert_tags(t, lexicon.internal_scheme, lexicon.input_scheme);
  return out;
}

Loaded load_model(const std::string& checkpoint, const torch::Device& device) {
  auto saved = train::open_saved_run(checkpoint, "ner");
  Loaded m;
  m.config = NerConfig::read(saved.config);
  auto& lx = m.lexicon;
  lx.words = Vocab::from_string(train::get_string(saved.task, "words"), checkpoint + "#words");
  lx.chars = Vocab::from_string(train::get_string(saved.task, "chars"), checkpoint + "#chars");
  lx.tags = split_lines(train::get_string(saved.task, "tags"));
  lx.input_scheme = data::parse_tag_scheme(train::get_string(saved.task, "input_scheme"));
  lx.internal_scheme = data::parse_tag_scheme(m.config.tag_scheme);
  lx.lowercase = m.config.lowercase;
  lx.normalize_digits = m.config.normalize_digits;
  lx.max_word_length = m.config.max_word_length;
  m.model = build_model(m.config, lx);
  train::load_weights(*m.model, saved.model, checkpoint);
  train::check_finite(*m.model, checkpoint);
  m.model->to(device);
  m.model->eval();
  return m;
}

Conlleval evaluate(Loaded& m, const std::string& path, const torch::Device& device) {
  const auto sentences = m.config.read(path, m.lexicon.input_scheme);
  std::vector<std::vector<std::string>> tokens;
  for (const auto& s : sentences) tokens.push_back(s.tokens);
  const auto guessed = m.tag(tokens, device);
  Conlleval ev;
  for (size_t i = 0; i < sentences.size(); ++i) ev.add(sentences[i].tags, guessed[i]);
  return ev;
}

namespace {
train::Json entities_json(const std::string& text, const std::vector<data::TextToken>& tokens,
                          const std::vector<data::Span>& spans) {
  train::Json entities = train::Json::array();
  for (const auto& s : spans) {
    const size_t b = tokens[s.start].begin, e = tokens[s.end - 1].end;
    entities.push_back({{"start", data::code_point_offset(text, b)},
                        {"end", data::code_point_offset(text, e)},
                        {"type", s.type},
                        {"text", text.substr(b, e - b)}});
  }
  return {{"text", text}, {"entities", entities}};
}
}  // namespace

std::pair<std::string, std::vector<data::TextToken>> joined_tokens(
    const std::vector<std::string>& tokens) {
  std::pair<std::string, std::vector<data::TextToken>> out;
  auto& [text, toks] = out;
  for (const auto& t : tokens) {
    if (!toks.empty()) text += " ";
    toks.push_back({t, text.size(), text.size() + t.size()});
    text += t;
  }
  return out;
}

std::vector<train::Json> tag_json(Loaded& m, const std::vector<std::string>& texts,
                                  const std::vector<std::vector<data::TextToken>>& tokens,
                                  const torch::Device& device, bool token_tags) {
  return tag_json(m, texts, tokens, device, std::vector<bool>(texts.size(), token_tags));
}

std::vector<train::Json> tag_json(Loaded& m, const std::vector<std::string>& texts,
                                  const std::vector<std::vector<data::TextToken>>& tokens,
                                  const torch::Device& device,
                                  const std::vector<bool>& token_tags) {
  TORCH_CHECK(texts.size() == tokens.size() && texts.size() == token_tags.size(),
              "tag_json: expected tokens and token_tags for each of the ", texts.size(),
              " texts, got ", tokens.size(), " and ", token_tags.size());
  std::vector<std::vector<std::string>> words;
  for (const auto& t : tokens) {
    words.emplace_back();
    for (const auto& x : t) words.back().push_back(x.text);
  }
  const auto tagged = m.tag_scored(words, device);
  std::vector<train::Json> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    out.push_back(entities_json(texts[i], tokens[i], tagged[i], m, token_tags[i]));
  return out;
}

train::Json entities_json(const std::string& text, const std::vector<data::TextToken>& tokens,
                          const std::vector<std::string>& internal_tags, const Loaded& m) {
  return entities_json(text, tokens, data::tags_to_spans(internal_tags, m.lexicon.internal_scheme));
}

train::Json entities_json(const std::string& text, const std::vector<data::TextToken>& tokens,
                          const Tagging& tagging, const Loaded& m, bool token_tags) {
  train::Json j = entities_json(text, tokens, tagging.spans);
  auto& entities = j["entities"];
  for (size_t i = 0; i < entities.size() && i < tagging.span_confidence.size(); ++i) {
    entities[i]["confidence"] = tagging.span_confidence[i];
  }
  if (token_tags) {
    const auto tags =
        data::convert_tags(tagging.tags, m.lexicon.internal_scheme, m.lexicon.input_scheme);
    train::Json toks = train::Json::array();
    for (size_t k = 0; k < tokens.size(); ++k) {
      toks.push_back({{"text", tokens[k].text},
                      {"start", data::code_point_offset(text, tokens[k].begin)},
                      {"end", data::code_point_offset(text, tokens[k].end)},
                      {"tag", m.config.unrename(tags[k])},
                      {"confidence", tagging.tag_confidence[k]}});
    }
    j["tokens"] = toks;
  }
  return j;
}

}  // namespace rnnkit::ner

// rnnkit-ner's training: sentences encoded for the tagger, its batches, the NerTask that fit()
// runs, and the train command.
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
namespace internal {

Encoded encode(const Lexicon& lx, const std::vector<std::string>& tokens,
               const std::vector<std::string>& internal_tags) {
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

}  // namespace internal

namespace {
using namespace internal;

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

}  // namespace rnnkit::ner

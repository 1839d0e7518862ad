#include "seq2seq.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <fmt/core.h>

#include <torch/nn/functional/loss.h>

#include <rnnkit/data/tokenize.h>
#include <rnnkit/registry.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::seq2seq {

using data::Vocab;
using torch::Tensor;
using Ids = std::vector<int64_t>;

namespace {
const char* const kSpace = "\xe2\x96\x81";  // ▁, a space of a character-level sentence
}

const train::KeyTable& Seq2SeqConfig::keys() {
  static const train::KeyTable table = [] {
    using namespace train;
    const Seq2SeqConfig d;
    return KeyTable(
               {
                   path("data", "train_source", true, "training sources, one sentence per line"),
                   path("data", "train_target", true,
                        "training targets, line by line the translations of `train_source`"),
                   path("data", "valid_source", true, "validation sources (select the best epoch)"),
                   path("data", "valid_target", true, "validation targets"),
                   choice(
                       "data", "tokenize", d.tokenize, {"space", "rnnkit", "char"},
                       "`space`: the files are tokenized (Multi30k's `tok/`), tokens are what "
                       "whitespace separates; `rnnkit`: the apps' tokenizer on raw text; `char`: "
                       "one token per character"),
                   flag("data", "lowercase", d.lowercase, "lowercase both sides first"),
                   train::encoding("data", "encoding", "the files' text encoding"),
                   integer("data", "min_count", d.min_count, 1, INT64_MAX,
                           "tokens of train seen fewer times become `<unk>`"),
                   integer("data", "max_vocab", d.max_vocab, 0, INT64_MAX,
                           "each vocabulary's size cap (0: no cap)"),
                   flag("data", "shared_vocab", d.shared_vocab,
                        "one vocabulary for both sides (built from both)"),
                   integer("data", "max_length", d.max_length, 1, 10000,
                           "tokens per side of a training pair; a longer pair is an error naming "
                           "its line, or dropped with `drop_long`"),
                   flag("data", "drop_long", d.drop_long,
                        "leave out training pairs over `max_length` (counted in the log) instead "
                        "of stopping"),
               })
        .with(common_keys())
        .with(rnn_keys("model", d.rnn))
        .with(KeyTable({
            integer("model", "embedding_size", d.embedding_size, 1, kMaxWidth,
                    "both sides' embeddings"),
            flag("model", "bidirectional_encoder", d.bidirectional_encoder,
                 "the encoder reads the source both ways (its memory is 2 × hidden_size wide)"),
            choice("model", "attention", d.attention, {"additive", "dot", "general", "none"},
                   "`additive` (Bahdanau), `dot` or `general` (Luong), `none` (the plain "
                   "encoder-decoder: the bridge's state is all the decoder gets)"),
            flag("model", "input_feeding", d.input_feeding,
                 "Luong's input feeding: h̃<t-1> joins the decoder's input (dot, general)"),
            flag("model", "tie_embeddings", d.tie_embeddings,
                 "the softmax layer is the target embeddings (needs embedding_size == "
                 "hidden_size)"),
            number("model", "dropout", d.rnn.dropout(), 0, 0.99,
                   "between layers and before the softmax"),
            number("model", "embedding_dropout", d.embedding_dropout, 0, 0.99,
                   "on both sides' embeddings"),
            number("train", "label_smoothing", d.label_smoothing, 0, 0.99,
                   "ε of label-smoothed cross-entropy (Szegedy et al. 2016); perplexity is "
                   "reported without it"),
            integer("train", "valid_beam", d.valid_beam, 1, 100,
                    "beam of the validation BLEU that selects `best.pt` (1: greedy)"),
        }));
  }();
  return table;
}

Seq2SeqConfig Seq2SeqConfig::read(train::ConfigReader& c) {
  auto k = [](const char* section, const char* name) -> const train::Key& {
    return keys().at(section, name);
  };
  Seq2SeqConfig s;
  s.train_source = c.path(k("data", "train_source"));
  s.train_target = c.path(k("data", "train_target"));
  s.valid_source = c.path(k("data", "valid_source"));
  s.valid_target = c.path(k("data", "valid_target"));
  if (s.train_source.empty() || s.train_target.empty() || s.valid_source.empty() ||
      s.valid_target.empty()) {
    throw train::ConfigError(
        c.path() + ": [data] needs train_source, train_target, valid_source and valid_target");
  }
  s.tokenize = c.choice(k("data", "tokenize"));
  s.lowercase = c.flag(k("data", "lowercase"));
  s.encoding = c.encoding(k("data", "encoding"));
  s.min_count = c.integer(k("data", "min_count"));
  s.max_vocab = c.integer(k("data", "max_vocab"));
  s.shared_vocab = c.flag(k("data", "shared_vocab"));
  s.max_length = c.integer(k("data", "max_length"));
  s.drop_long = c.flag(k("data", "drop_long"));
  s.rnn = train::read_rnn_options(c, "model", s.rnn);
  s.embedding_size = c.integer(k("model", "embedding_size"));
  s.bidirectional_encoder = c.flag(k("model", "bidirectional_encoder"));
  s.attention = c.choice(k("model", "attention"));
  s.input_feeding = c.flag(k("model", "input_feeding"));
  s.tie_embeddings = c.flag(k("model", "tie_embeddings"));
  s.rnn.dropout(c.number(k("model", "dropout")));
  s.embedding_dropout = c.number(k("model", "embedding_dropout"));
  s.label_smoothing = c.number(k("train", "label_smoothing"));
  s.valid_beam = c.integer(k("train", "valid_beam"));
  // The model's own checks, as config errors naming the keys.
  if (s.input_feeding && s.attention != "dot" && s.attention != "general") {
    throw train::ConfigError(c.where("model", "input_feeding") +
                             ": needs attention = \"dot\" or \"general\", got \"" + s.attention +
                             "\" (the additive decoder feeds its context already)");
  }
  if (s.tie_embeddings && s.embedding_size != s.rnn.hidden_size()) {
    throw train::ConfigError(
        c.where("model", "tie_embeddings") + ": needs embedding_size == hidden_size, got " +
        std::to_string(s.embedding_size) + " and " + std::to_string(s.rnn.hidden_size()));
  }
  const int64_t memory = (s.bidirectional_encoder ? 2 : 1) * s.rnn.hidden_size();
  if (s.attention == "dot" && memory != s.rnn.hidden_size()) {
    throw train::ConfigError(c.where("model", "attention") +
                             ": \"dot\" needs the encoder's outputs as wide as the decoder's "
                             "state; with bidirectional_encoder they are twice as wide (use "
                             "\"general\")");
  }
  s.train = train::TrainOptions::read(c);
  c.reject_unknown_keys();
  return s;
}

Seq2SeqOptions Seq2SeqConfig::model_options(int64_t source_vocab, int64_t target_vocab) const {
  return Seq2SeqOptions(source_vocab, target_vocab, rnn)
      .embedding_size(embedding_size)
      .bidirectional_encoder(bidirectional_encoder)
      .attention(attention)
      .input_feeding(input_feeding)
      .tie_embeddings(tie_embeddings)
      .embedding_dropout(embedding_dropout);
}

std::string Seq2SeqConfig::architecture(int64_t source_vocab, int64_t target_vocab) const {
  return fmt::format(
      "source={} target={} tokenize={} cell={} embedding={} hidden={} layers={} bidirectional={} "
      "attention={} input_feeding={} tied={}",
      source_vocab, target_vocab, tokenize, cell_label(rnn.cell(), rnn.cell_options()),
      embedding_size, rnn.hidden_size(), rnn.num_layers(), bidirectional_encoder, attention,
      input_feeding, tie_embeddings);
}

std::vector<std::string> Seq2SeqConfig::tokenize_line(const std::string& raw) const {
  const std::string line = lowercase ? data::to_lower(raw) : raw;
  std::vector<std::string> out;
  if (tokenize == "char") {
    for (auto& cp : data::split_code_points(line)) out.push_back(cp == " " ? kSpace : cp);
    // Runs of spaces and spaces at the ends carry nothing.
    std::vector<std::string> squeezed;
    for (auto& t : out) {
      if (t == kSpace && (squeezed.empty() || squeezed.back() == kSpace)) continue;
      squeezed.push_back(std::move(t));
    }
    if (!squeezed.empty() && squeezed.back() == kSpace) squeezed.pop_back();
    return squeezed;
  }
  if (tokenize == "rnnkit") {
    for (const auto& t : data::tokenize_ptb(line)) out.push_back(t.text);
    return out;
  }
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string Seq2SeqConfig::detokenize(const std::vector<std::string>& tokens) const {
  std::string out;
  for (const auto& t : tokens) {
    if (tokenize == "char") {
      out += t == kSpace ? " " : t;
    } else {
      if (!out.empty()) out += ' ';
      out += t;
    }
  }
  return out;
}

std::string Seq2SeqConfig::bleu_text(const std::vector<std::string>& tokens) const {
  if (tokenize != "char") return detokenize(tokens);
  std::string out;
  for (const auto& t : tokens) out += (out.empty() ? "" : " ") + t;
  return out;
}

Parallel read_parallel(const Seq2SeqConfig& c, const std::string& source_path,
                       const std::string& target_path) {
  data::LineReader src(source_path, c.encoding), tgt(target_path, c.encoding);
  Parallel p;
  std::string a, b;
  size_t line = 0;
  while (true) {
    const bool has_a = src.next(a), has_b = tgt.next(b);
    if (!has_a && !has_b) break;
    ++line;
    if (has_a != has_b) {
      const auto& shorter = has_a ? target_path : source_path;
      throw data::DataError(shorter, 0,
                            fmt::format("ends after {} lines, but {} has more: the source and "
                                        "target files must be aligned line by line",
                                        line - 1, has_a ? source_path : target_path));
    }
    auto sa = c.tokenize_line(a), sb = c.tokenize_line(b);
    if (sa.empty()) throw data::DataError(source_path, line, "an empty line: expected a sentence");
    if (sb.empty()) throw data::DataError(target_path, line, "an empty line: expected a sentence");
    const bool long_a = static_cast<int64_t>(sa.size()) > c.max_length;
    if (long_a || static_cast<int64_t>(sb.size()) > c.max_length) {
      if (c.drop_long) {
        ++p.dropped;
        continue;
      }
      throw data::DataError(long_a ? source_path : target_path, line,
                            fmt::format("{} tokens, more than data.max_length = {} (raise it, or "
                                        "set data.drop_long to leave such pairs out)",
                                        long_a ? sa.size() : sb.size(), c.max_length));
    }
    p.source.push_back(std::move(sa));
    p.target.push_back(std::move(sb));
  }
  if (p.source.empty())
    throw data::DataError(source_path, 0, "no sentence pair (empty, or every pair dropped)");
  return p;
}

namespace {

struct Batch {
  Tensor source, lengths;        ///< [S, B], [B]
  Tensor target_in, target_out;  ///< [T, B]: <bos> y, and y <eos>
  int64_t tokens = 0;            ///< target tokens with <eos>
};

Ids encode_source(const Vocab& v, const std::vector<std::string>& tokens) {
  Ids ids = v.encode(tokens);
  ids.push_back(Vocab::kEos);  // an empty source is <eos> alone
  return ids;
}

Batch make_batch(const std::vector<Ids>& src, const std::vector<Ids>* tgt,
                 const std::vector<size_t>& idx, const torch::Device& device) {
  const auto B = static_cast<int64_t>(idx.size());
  int64_t S = 0, T = 0;
  for (auto i : idx) {
    S = std::max<int64_t>(S, static_cast<int64_t>(src[i].size()));
    if (tgt) T = std::max<int64_t>(T, static_cast<int64_t>((*tgt)[i].size()) + 1);
  }
  Batch b;
  Tensor s = torch::zeros({S, B}, torch::kLong), len = torch::zeros({B}, torch::kLong);
  auto sa = s.accessor<int64_t, 2>();
  auto la = len.accessor<int64_t, 1>();
  Tensor ti = torch::zeros({T, B}, torch::kLong), to = torch::zeros({T, B}, torch::kLong);
  auto ia = ti.accessor<int64_t, 2>();
  auto oa = to.accessor<int64_t, 2>();
  for (int64_t j = 0; j < B; ++j) {
    const auto& x = src[idx[static_cast<size_t>(j)]];
    for (size_t t = 0; t < x.size(); ++t) sa[static_cast<int64_t>(t)][j] = x[t];
    la[j] = static_cast<int64_t>(x.size());
    if (tgt) {
      const auto& y = (*tgt)[idx[static_cast<size_t>(j)]];
      ia[0][j] = Vocab::kBos;
      for (size_t t = 0; t < y.size(); ++t) {
        ia[static_cast<int64_t>(t) + 1][j] = y[t];
        oa[static_cast<int64_t>(t)][j] = y[t];
      }
      oa[static_cast<int64_t>(y.size())][j] = Vocab::kEos;
      b.tokens += static_cast<int64_t>(y.size()) + 1;
    }
  }
  b.source = s.to(device);
  b.lengths = len;  // on the CPU: the RNN reads them there
  b.target_in = ti.to(device);
  b.target_out = to.to(device);
  return b;
}

/// Batches of at most `size` indices, sentences of similar source lengths together.
std::vector<std::vector<size_t>> length_batches(const std::vector<Ids>& src, size_t size) {
  std::vector<size_t> order(src.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return src[a].size() < src[b].size(); });
  std::vector<std::vector<size_t>> out;
  for (size_t i = 0; i < order.size(); i += size)
    out.emplace_back(order.begin() + i, order.begin() + std::min(order.size(), i + size));
  return out;
}

Tensor token_loss(const Tensor& logits, const Tensor& target, double smoothing) {
  namespace F = torch::nn::functional;
  return F::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), target.reshape({-1}),
      F::CrossEntropyFuncOptions().ignore_index(Vocab::kPad).label_smoothing(smoothing));
}

/// Mean cross-entropy per target token (with <eos>) under teacher forcing, in eval mode, without
/// label smoothing: validation's perplexity and eval's.
double mean_loss(Seq2SeqImpl& model, const std::vector<Ids>& src, const std::vector<Ids>& tgt,
                 const torch::Device& device, int64_t* tokens_out) {
  torch::NoGradGuard g;
  const bool was = model.is_training();
  model.eval();
  double loss = 0;
  int64_t tokens = 0;
  for (const auto& idx : length_batches(src, 128)) {
    train::throw_if_stopped();
    const auto b = make_batch(src, &tgt, idx, device);
    const Tensor logits = model.forward(b.source, b.lengths, b.target_in);
    loss += token_loss(logits.to(torch::kFloat), b.target_out, 0).item<double>() *
            static_cast<double>(b.tokens);
    tokens += b.tokens;
  }
  model.train(was);
  if (tokens_out) *tokens_out = tokens;
  return loss / static_cast<double>(std::max<int64_t>(tokens, 1));
}

std::vector<Ids> encode_all(const Vocab& v, const std::vector<std::vector<std::string>>& s,
                            bool source) {
  std::vector<Ids> out;
  out.reserve(s.size());
  for (const auto& t : s) out.push_back(source ? encode_source(v, t) : v.encode(t));
  return out;
}

std::vector<size_t> pair_lengths(const std::vector<Ids>& src, const std::vector<Ids>& tgt) {
  std::vector<size_t> out;
  for (size_t i = 0; i < src.size(); ++i) out.push_back(std::max(src[i].size(), tgt[i].size()));
  return out;
}

std::vector<Translation> decode_ids(Seq2SeqImpl& model, const Lexicon& lx,
                                    const std::vector<Ids>& src, const TranslateOptions& o,
                                    const torch::Device& device) {
  struct EvalMode {
    Seq2SeqImpl& m;
    bool was;
    explicit EvalMode(Seq2SeqImpl& model) : m(model), was(model.is_training()) { m.eval(); }
    ~EvalMode() { m.train(was); }
  } eval_mode(model);
  torch::NoGradGuard no_grad;
  std::vector<Translation> out(src.size());
  const size_t per_batch = o.beam > 1 ? 32 : 128;
  for (const auto& idx : length_batches(src, per_batch)) {
    train::throw_if_stopped();
    const auto b = make_batch(src, nullptr, idx, device);
    Seq2SeqStepper stepper(model, model.encode(b.source, b.lengths));
    SearchOptions so;
    so.beam = o.beam;
    so.alpha = o.alpha;
    so.n_best = o.n_best;
    so.bos = Vocab::kBos;
    so.eos = Vocab::kEos;
    so.banned = {Vocab::kPad, Vocab::kBos};
    if (!o.allow_unk) so.banned.push_back(Vocab::kUnk);
    so.keep_attention = o.keep_attention;
    for (auto i : idx) {  // without the source's <eos>
      so.max_lengths.push_back(max_output_tokens(o, static_cast<int64_t>(src[i].size()) - 1));
    }
    if (o.beam == 1) {
      auto hyps = greedy_search(stepper, so);
      for (size_t j = 0; j < idx.size(); ++j) out[idx[j]].hypotheses = {std::move(hyps[j])};
    } else {
      auto hyps = beam_search(stepper, so);
      for (size_t j = 0; j < idx.size(); ++j) out[idx[j]].hypotheses = std::move(hyps[j]);
    }
  }
  for (size_t i = 0; i < src.size(); ++i) {
    Ids s(src[i].begin(), src[i].end() - 1);
    out[i].source_tokens = lx.source.decode(s);
  }
  return out;
}

class Seq2SeqTask : public train::SentenceTask {
 public:
  Seq2SeqTask(const Seq2SeqConfig& c, Lexicon lexicon, std::vector<Ids> train_src,
              std::vector<Ids> train_tgt, std::vector<Ids> valid_src, std::vector<Ids> valid_tgt,
              std::vector<std::string> valid_refs, Seq2Seq model, torch::Device device)
      : SentenceTask(c.train, pair_lengths(train_src, train_tgt)),
        c_(c),
        lx_(std::move(lexicon)),
        train_src_(std::move(train_src)),
        train_tgt_(std::move(train_tgt)),
        valid_src_(std::move(valid_src)),
        valid_tgt_(std::move(valid_tgt)),
        valid_refs_(std::move(valid_refs)),
        model_(std::move(model)),
        device_(device) {}
  torch::nn::Module& model() override { return *model_; }
  std::string unit() const override { return "tok"; }
  std::string app_name() const override { return "seq2seq"; }
  std::string architecture() const override {
    return c_.architecture(lx_.source.size(), lx_.target.size());
  }
  train::BatchLoss train_on(const std::vector<size_t>& idx) override {
    const auto b = make_batch(train_src_, &train_tgt_, idx, device_);
    const Tensor logits = model_->forward(b.source, b.lengths, b.target_in);
    return {token_loss(logits, b.target_out, c_.label_smoothing), b.tokens};
  }
  train::Metrics evaluate() override {
    int64_t tokens = 0;
    const double mean = mean_loss(*model_, valid_src_, valid_tgt_, device_, &tokens);
    TranslateOptions o;
    o.beam = c_.valid_beam;
    o.alpha = c_.valid_beam > 1 ? 1.0 : 0.0;
    const auto tr = decode_ids(*model_, lx_, valid_src_, o, device_);
    std::vector<std::string> hyps;
    int64_t exact = 0;
    for (size_t i = 0; i < tr.size(); ++i) {
      hyps.push_back(c_.bleu_text(lx_.target.decode(tr[i].hypotheses.at(0).tokens)));
      exact += hyps.back() == valid_refs_[i];
    }
    const auto bleu = corpus_bleu(hyps, valid_refs_, "multi-bleu", false);
    train::Metrics m;
    m.values = {{"val_bleu", bleu.bleu},
                {"val_loss", mean},
                {"val_ppl", std::exp(mean)},
                {"val_exact", static_cast<double>(exact) / static_cast<double>(tr.size())}};
    m.main = "val_bleu";
    m.higher_is_better = true;
    return m;
  }
  void save_state(torch::serialize::OutputArchive& a) const override {
    train::put_string(a, "source_vocab", lx_.source.to_string());
    train::put_string(a, "target_vocab", lx_.target.to_string());
  }

 private:
  const Seq2SeqConfig& c_;
  Lexicon lx_;
  std::vector<Ids> train_src_, train_tgt_, valid_src_, valid_tgt_;
  std::vector<std::string> valid_refs_;
  Seq2Seq model_;
  torch::Device device_;
};

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace

train::FitResult train(train::ConfigReader& config, const train::RunOptions& run) {
  const Seq2SeqConfig c = Seq2SeqConfig::read(config);
  const torch::Device device = train::setup_runtime(run, c.train.seed);
  const auto tr = read_parallel(c, c.train_source, c.train_target);
  auto va_c = c;
  va_c.drop_long = false;
  va_c.max_length = 10000;  // validation is scored whole
  const auto va = read_parallel(va_c, c.valid_source, c.valid_target);
  Lexicon lx;
  const auto cap = static_cast<size_t>(c.max_vocab);
  if (c.shared_vocab) {
    auto both = tr.source;
    both.insert(both.end(), tr.target.begin(), tr.target.end());
    lx.source = lx.target = Vocab::build(both, cap, c.min_count);
  } else {
    lx.source = Vocab::build(tr.source, cap, c.min_count);
    lx.target = Vocab::build(tr.target, cap, c.min_count);
  }
  std::vector<std::string> refs;
  for (const auto& t : va.target) refs.push_back(c.bleu_text(t));
  Seq2Seq model(c.model_options(lx.source.size(), lx.target.size()));
  model->to(device);
  if (!run.quiet) {
    fmt::print(stderr, "{}", config.resolved());
    fmt::print(stderr,
               "train: {} pairs{}, valid: {} pairs, vocabulary: {} source, {} target, "
               "parameters: {}\n",
               tr.source.size(),
               tr.dropped ? fmt::format(" ({} over data.max_length dropped)", tr.dropped) : "",
               va.source.size(), lx.source.size(), lx.target.size(), parameter_count(*model));
  }
  auto train_src = encode_all(lx.source, tr.source, true);
  auto train_tgt = encode_all(lx.target, tr.target, false);
  auto valid_src = encode_all(lx.source, va.source, true);
  auto valid_tgt = encode_all(lx.target, va.target, false);
  Seq2SeqTask task(c, std::move(lx), std::move(train_src), std::move(train_tgt),
                   std::move(valid_src), std::move(valid_tgt), std::move(refs), model, device);
  return train::fit(task, c.train, run, config.resolved());
}

Loaded load_model(const std::string& checkpoint, const torch::Device& device) {
  auto saved = train::open_saved_run(checkpoint, "seq2seq");
  Loaded m;
  m.config = Seq2SeqConfig::read(saved.config);
  m.lexicon.source = Vocab::from_string(train::get_string(saved.task, "source_vocab"),
                                        checkpoint + "#source_vocab");
  m.lexicon.target = Vocab::from_string(train::get_string(saved.task, "target_vocab"),
                                        checkpoint + "#target_vocab");
  m.model = Seq2Seq(m.config.model_options(m.lexicon.source.size(), m.lexicon.target.size()));
  train::load_weights(*m.model, saved.model, checkpoint);
  train::check_finite(*m.model, checkpoint);
  m.model->to(device);
  m.model->eval();
  m.device = device;
  return m;
}

void check_translate_options(const TranslateOptions& o) {
  check_search_options(o.beam, o.n_best, o.alpha);
  if (!std::isfinite(o.max_length_factor) || o.max_length_factor <= 0 || o.max_length_factor > 100)
    throw std::invalid_argument("--max-length-factor must be a number in (0, 100], got " +
                                std::to_string(o.max_length_factor));
  if (o.max_length < 1 || o.max_length > kMostOutputTokens)
    throw std::invalid_argument("--max-length must be in 1.." + std::to_string(kMostOutputTokens) +
                                ", got " + std::to_string(o.max_length));
}

std::string Translation::text(const Loaded& m, size_t k) const {
  return m.config.detokenize(m.lexicon.target.decode(hypotheses.at(k).tokens));
}

std::vector<Translation> translate(Loaded& m, const std::vector<std::vector<std::string>>& sources,
                                   const TranslateOptions& o) {
  check_translate_options(o);
  return decode_ids(*m.model, m.lexicon, encode_all(m.lexicon.source, sources, true), o, m.device);
}

double teacher_forced_loss(Seq2SeqImpl& model, const Lexicon& lx,
                           const std::vector<std::vector<std::string>>& source,
                           const std::vector<std::vector<std::string>>& target,
                           const torch::Device& device, int64_t* tokens_out) {
  return mean_loss(model, encode_all(lx.source, source, true), encode_all(lx.target, target, false),
                   device, tokens_out);
}

int64_t max_output_tokens(const TranslateOptions& o, int64_t source_tokens) {
  const double by_factor = std::ceil(o.max_length_factor * static_cast<double>(source_tokens));
  return std::min<int64_t>(o.max_length, std::max<int64_t>(1, static_cast<int64_t>(by_factor)));
}

train::Json translation_json(const Loaded& m, const Translation& t, bool attention,
                             int attention_decimals) {
  const double scale = attention_decimals >= 0 ? std::pow(10.0, attention_decimals) : 0;
  train::Json hyps = train::Json::array();
  for (const auto& h : t.hypotheses) {
    train::Json j{{"text", m.config.detokenize(m.lexicon.target.decode(h.tokens))},
                  {"tokens", m.lexicon.target.decode(h.tokens)},
                  {"score", h.score},
                  {"logprob", h.logprob}};
    if (attention && h.attention.defined()) {
      const Tensor a = h.attention.to(torch::kDouble).contiguous();
      const auto cells = a.accessor<double, 2>();  // one item() per cell took seconds
      std::vector<std::vector<double>> rows;
      for (int64_t i = 0; i < a.size(0); ++i) {
        // The source's real positions and its <eos>; the batch's padding is left out.
        std::vector<double> r(t.source_tokens.size() + 1);
        for (size_t k = 0; k < r.size(); ++k) {
          const double w = cells[i][static_cast<int64_t>(k)];
          r[k] = scale > 0 ? std::round(w * scale) / scale : w;
        }
        rows.push_back(std::move(r));
      }
      j["attention"] = rows;
    }
    hyps.push_back(std::move(j));
  }
  train::Json out{{"source_tokens", t.source_tokens}};
  out["translation"] = hyps.empty() ? train::Json("") : hyps[0]["text"];
  out["score"] = hyps.empty() ? train::Json(nullptr) : hyps[0]["score"];
  out["hypotheses"] = std::move(hyps);
  return out;
}

namespace {
std::string gnuplot_label(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}
}  // namespace

void plot_attention(const Loaded& m, const Translation& t, const std::string& dir, size_t n) {
  const auto& h = t.hypotheses.at(0);
  if (!h.attention.defined()) throw std::runtime_error("plot_attention: no attention was kept");
  if (dir.find('\'') != std::string::npos)
    throw std::invalid_argument(
        "--plot-attention: a folder name with a quote (') is not supported");
  std::filesystem::create_directories(dir);
  auto cols = t.source_tokens;
  cols.push_back("<eos>");
  auto rows = m.lexicon.target.decode(h.tokens);
  rows.push_back("<eos>");
  const std::string base = (std::filesystem::path(dir) / std::to_string(n)).string();
  {
    std::ofstream dat(base + ".dat");
    const Tensor a = h.attention.to(torch::kDouble);
    for (size_t i = 0; i < rows.size(); ++i) {
      for (size_t k = 0; k < cols.size(); ++k)
        dat << (k ? " " : "") << a[static_cast<int64_t>(i)][static_cast<int64_t>(k)].item<double>();
      dat << "\n";
    }
    if (!dat) throw std::runtime_error(base + ".dat: could not be written");
  }
  std::ofstream gp(base + ".gp");
  gp << "set terminal pngcairo size " << std::max<size_t>(400, 40 * cols.size() + 160) << ","
     << std::max<size_t>(300, 30 * rows.size() + 140) << " noenhanced\n"
     << "set output '" << base
     << ".png'\nunset key\nset yrange [] reverse\nset palette grey negative\n"
     << "set cbrange [0:1]\nset x2tics rotate by 90 left\nunset xtics\nset x2tics (";
  for (size_t k = 0; k < cols.size(); ++k)
    gp << (k ? ", " : "") << '"'
       << gnuplot_label(m.config.tokenize == "char" && cols[k] == kSpace ? "_" : cols[k]) << "\" "
       << k;
  gp << ")\nset ytics (";
  for (size_t i = 0; i < rows.size(); ++i)
    gp << (i ? ", " : "") << '"'
       << gnuplot_label(m.config.tokenize == "char" && rows[i] == kSpace ? "_" : rows[i]) << "\" "
       << i;
  gp << ")\nplot '" << base << ".dat' matrix with image axes x2y1\n";
  gp.close();
  const std::string cmd = "gnuplot '" + base + ".gp' 2>&1";
  if (std::system(cmd.c_str()) != 0 || !std::filesystem::exists(base + ".png"))
    throw std::runtime_error(base + ".png: gnuplot failed (scripts/setup.sh installs gnuplot)");
}

}  // namespace rnnkit::seq2seq

#include "lm.h"

#include <cmath>
#include <iostream>

#include <fmt/core.h>
#include <torch/nn/functional/loss.h>
#include <torch/serialize/archive.h>

#include <rnnkit/data/batching.h>
#include <rnnkit/data/corpus.h>
#include <rnnkit/registry.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::lm {

using data::Vocab;
using torch::Tensor;
namespace F = torch::nn::functional;

const train::KeyTable& LMConfig::keys() {
  static const train::KeyTable table = [] {
    using namespace train;
    const LMConfig d;  // the defaults
    return KeyTable(
               {
                   choice("data", "level", "", {"char", "word"},
                          "`char` (one token per code point) or `word` (whitespace tokens, `<eos>` "
                          "after each line)"),
                   path("data", "train", true, "the training text"),
                   path("data", "valid", true, "the validation text (selects the best epoch)"),
                   path("data", "test", false,
                        "a held-out text: when training ends `best.pt` scores it once and writes "
                        "`test.json` in the run dir"),
                   train::encoding("data", "encoding", "the files' text encoding"),
                   flag("data", "lowercase", d.lowercase, "word level: lowercase every word"),
                   integer("data", "max_vocab", d.max_vocab, 0, INT64_MAX,
                           "vocabulary size cap, specials included (0: no cap)"),
                   integer("data", "min_count", d.min_count, 1, INT64_MAX,
                           "words seen fewer times become `<unk>`"),
                   choice("data", "batching", d.batching, {"stream", "sentences"},
                          "`stream`: truncated BPTT over B continuous streams, the state carried "
                          "(detached) across batches; `sentences`: padded batches of lines, each "
                          "from a fresh state (word level)"),
                   integer("data", "bptt", d.bptt, 1, 100000, "steps per truncated-BPTT window"),
                   integer("data", "eval_batch_size", d.eval_batch_size, 1, 65536,
                           "parallel streams when evaluating; 1 scores every token with the state "
                           "carried through the whole file"),
               })
        .with(common_keys())
        .with(rnn_keys("model", d.rnn))
        .with(KeyTable({
            integer("model", "embedding_size", d.embedding_size, 0, kMaxWidth,
                    "0: one-hot inputs (tiny vocabularies)"),
            number("model", "dropout", d.rnn.dropout(), 0, 0.99,
                   "between layers and before the softmax"),
            number("model", "embedding_dropout", d.embedding_dropout, 0, 0.99, "on the embeddings"),
            flag("model", "variational_dropout", d.rnn.variational_dropout(),
                 "`dropout` and `embedding_dropout` with one mask per sequence for every time "
                 "step (Gal & Ghahramani 2016; Merity et al. 2017's locked dropout) instead of "
                 "a new mask at every step: with `recurrent_dropout`, the inputs, the "
                 "layer-to-layer connections, the outputs and the recurrent connection are all "
                 "dropped variationally"),
            flag("model", "tie_weights", d.tie_weights,
                 "the softmax matrix is the embedding matrix (needs `embedding_size == "
                 "hidden_size`)"),
        }));
  }();
  return table;
}

LMConfig LMConfig::read(train::ConfigReader& c) {
  auto k = [](const char* section, const char* name) -> const train::Key& {
    return keys().at(section, name);
  };
  LMConfig l;
  l.level = c.choice(k("data", "level"));
  l.train_path = c.path(k("data", "train"));
  l.valid_path = c.path(k("data", "valid"));
  if (l.train_path.empty() || l.valid_path.empty()) {
    throw train::ConfigError(c.path() + ": [data] needs both train and valid files");
  }
  l.test_path = c.path(k("data", "test"));
  l.encoding = c.encoding(k("data", "encoding"));
  l.lowercase = c.flag(k("data", "lowercase"));
  l.max_vocab = c.integer(k("data", "max_vocab"));
  l.min_count = c.integer(k("data", "min_count"));
  l.batching = c.choice(k("data", "batching"));
  if (l.batching == "sentences" && l.level == "char") {
    throw train::ConfigError(c.where("data", "batching") +
                             ": batching = \"sentences\" needs level = \"word\"");
  }
  l.bptt = c.integer(k("data", "bptt"));
  l.eval_batch_size = c.integer(k("data", "eval_batch_size"));

  l.rnn = train::read_rnn_options(c, "model", l.rnn);
  l.embedding_size = c.integer(k("model", "embedding_size"));
  l.rnn.dropout(c.number(k("model", "dropout")));
  l.embedding_dropout = c.number(k("model", "embedding_dropout"));
  l.rnn.variational_dropout(c.flag(k("model", "variational_dropout")));
  l.tie_weights = c.flag(k("model", "tie_weights"));
  if (l.tie_weights && l.embedding_size != l.rnn.hidden_size()) {
    throw train::ConfigError(c.where("model", "tie_weights") +
                             ": tied weights need embedding_size == hidden_size, got " +
                             std::to_string(l.embedding_size) + " and " +
                             std::to_string(l.rnn.hidden_size()));
  }
  l.train = train::TrainOptions::read(c);
  c.reject_unknown_keys();
  return l;
}

LanguageModelOptions LMConfig::model_options(int64_t vocab_size) const {
  return LanguageModelOptions(vocab_size, rnn)
      .embedding_size(embedding_size)
      .embedding_dropout(embedding_dropout)
      .tie_weights(tie_weights);
}

std::string LMConfig::architecture(int64_t vocab_size) const {
  return fmt::format("level={} vocab={} cell={} embedding={} hidden={} layers={} tied={}", level,
                     vocab_size, cell_label(rnn.cell(), rnn.cell_options()), embedding_size,
                     rnn.hidden_size(), rnn.num_layers(), tie_weights);
}

std::vector<std::string> LMConfig::tokenize_file(const std::string& path) const {
  if (level == "char") return data::read_char_corpus(path, encoding);
  return data::read_word_corpus(path, data::WordTokenizer{lowercase, false}, encoding);
}

std::vector<std::string> LMConfig::tokenize_line(const std::string& line) const {
  if (level == "char") return data::split_code_points(line);
  return data::WordTokenizer{lowercase, false}(line);
}

std::string LMConfig::detokenize(const std::vector<std::string>& tokens) const {
  std::string out;
  for (const auto& t : tokens) {
    if (level == "char") {
      out += t;
    } else if (t == "<eos>") {
      out += "\n";
    } else {
      out += (out.empty() || out.back() == '\n' ? "" : " ") + t;
    }
  }
  return out;
}

Vocab build_vocab(const LMConfig& c, const std::vector<std::string>& train_tokens) {
  return Vocab::build(train_tokens, static_cast<size_t>(c.max_vocab), c.min_count);
}

std::vector<int64_t> encode_stream(const Vocab& vocab, const std::vector<std::string>& tokens) {
  std::vector<int64_t> ids{Vocab::kEos};
  const auto enc = vocab.encode(tokens);
  ids.insert(ids.end(), enc.begin(), enc.end());
  return ids;
}

double Perplexity::perplexity() const { return std::exp(loss); }
double Perplexity::bits_per_token() const { return loss / std::log(2.0); }
double LineScore::perplexity() const { return std::exp(-logprob / std::max<int64_t>(tokens, 1)); }

namespace {

std::vector<State> detached(const std::vector<State>& states) {
  std::vector<State> out;
  out.reserve(states.size());
  for (const auto& s : states) out.push_back(s.detach());
  return out;
}

class LMTask : public train::Task {
 public:
  LMTask(const LMConfig& c, Vocab vocab, const std::vector<int64_t>& train_ids,
         std::vector<int64_t> valid_ids, LanguageModel model, torch::Device device)
      : c_(c),
        vocab_(std::move(vocab)),
        valid_ids_(std::move(valid_ids)),
        model_(std::move(model)),
        device_(device) {
    if (c.batching == "stream") {
      // The global batch's streams; in a data-parallel run each rank reads its own columns.
      batcher_.emplace(train_ids, c.train.batch_size);
    } else {
      // Sentences: the stream split after each <eos>, each sentence predicted from a fresh
      // <eos> context (as score does), never from the one before it.
      std::vector<int64_t> cur;
      for (size_t i = 1; i < train_ids.size(); ++i) {
        cur.push_back(train_ids[i]);
        if (train_ids[i] == Vocab::kEos) {
          if (cur.size() > 1) sentences_.push_back(cur);
          cur.clear();
        }
      }
      for (const auto& s : sentences_) lengths_.push_back(s.size());
    }
  }

  torch::nn::Module& model() override { return *model_; }
  std::string unit() const override { return "tok"; }
  std::string app_name() const override { return "lm"; }
  std::string architecture() const override { return c_.architecture(vocab_.size()); }

  int64_t begin_epoch(int64_t epoch) override {
    // Every epoch reads the streams from their start again: the state carried from the last
    // window of the previous epoch belongs to the streams' ends.
    carried_.clear();
    if (batcher_) return batcher_->num_windows(c_.bptt);
    plan_ = train::plan_epoch(lengths_, c_.train, epoch, shard());
    return static_cast<int64_t>(plan_.size());
  }

  train::BatchLoss train_batch(int64_t i) override {
    const int64_t V = vocab_.size();
    if (batcher_) {
      auto [x, y] = batcher_->window(i, c_.bptt);
      // This shard's columns (streams) of the global batch.
      x = shard().slice(x, 1);
      y = shard().slice(y, 1);
      auto out = model_->forward(x.to(device_), carried_);
      carried_ = detached(out.states);  // truncated BPTT: carry the state, not its graph
      const Tensor yd = y.to(device_).reshape(-1);
      return {F::cross_entropy(out.logits.view({-1, V}), yd), yd.numel()};
    }
    // sentences: input <eos> w1 .. wn, target w1 .. wn <eos>
    const auto& idx = plan_[i];
    if (idx.empty()) return {};  // this rank's share of a short last batch
    std::vector<std::vector<int64_t>> inputs, targets;
    for (auto k : idx) {
      std::vector<int64_t> in{Vocab::kEos};
      in.insert(in.end(), sentences_[k].begin(), sentences_[k].end() - 1);
      inputs.push_back(std::move(in));
      targets.push_back(sentences_[k]);
    }
    std::vector<size_t> all(idx.size());
    std::iota(all.begin(), all.end(), 0);
    const auto x = data::pad_sequences(inputs, all, Vocab::kPad);
    const auto y = data::pad_sequences(targets, all, -100);
    auto out = model_->forward(x.tokens.t().contiguous().to(device_), {}, x.lengths);
    const Tensor yd = y.tokens.t().contiguous().to(device_).reshape(-1);
    return {F::cross_entropy(out.logits.view({-1, V}), yd,
                             F::CrossEntropyFuncOptions().ignore_index(-100)),
            x.lengths.sum().item<int64_t>()};
  }

  train::Metrics evaluate() override {
    const Perplexity p = evaluate_stream(*model_, valid_ids_, c_.bptt, c_.eval_batch_size, device_);
    train::Metrics m;
    m.values = {{"val_loss", p.loss}, {"val_ppl", p.perplexity()}};
    if (c_.level == "char") m.values.push_back({"val_bpc", p.bits_per_token()});
    m.main = "val_loss";
    return m;
  }

  void save_state(torch::serialize::OutputArchive& a) const override {
    train::put_string(a, "vocab", vocab_.to_string());
    train::put_int(a, "carried", static_cast<int64_t>(carried_.size()));
  }

  /// The carried state, whose rows are this shard's streams: fit() writes the global batch's.
  std::vector<std::pair<std::string, Tensor>> sharded_state() const override {
    std::vector<std::pair<std::string, Tensor>> out;
    for (size_t i = 0; i < carried_.size(); ++i) {
      out.emplace_back("a" + std::to_string(i), carried_[i].a);
      if (carried_[i].c.defined()) out.emplace_back("c" + std::to_string(i), carried_[i].c);
    }
    return out;
  }

  void load_state(torch::serialize::InputArchive& a) override {
    if (!(Vocab::from_string(train::get_string(a, "vocab"), "checkpoint") == vocab_)) {
      throw train::CheckpointError(
          "the checkpoint's vocabulary differs from the one built from "
          "the config's data");
    }
    carried_.assign(static_cast<size_t>(train::get_int(a, "carried")), State{});
    auto mine = [this](const Tensor& t) { return shard().slice(t).contiguous(); };
    for (size_t i = 0; i < carried_.size(); ++i) {
      a.read("a" + std::to_string(i), carried_[i].a, true);
      Tensor c;
      if (a.try_read("c" + std::to_string(i), c, true)) carried_[i].c = c;
      carried_[i].a = mine(carried_[i].a).to(device_);
      if (carried_[i].c.defined()) carried_[i].c = mine(carried_[i].c).to(device_);
    }
  }

 private:
  const LMConfig& c_;
  Vocab vocab_;
  std::vector<int64_t> valid_ids_;
  LanguageModel model_;
  torch::Device device_;
  std::optional<data::StreamBatcher> batcher_;
  std::vector<State> carried_;
  std::vector<std::vector<int64_t>> sentences_;
  std::vector<size_t> lengths_;
  std::vector<std::vector<size_t>> plan_;
};

}  // namespace

Perplexity evaluate_stream(LanguageModelImpl& model, const std::vector<int64_t>& ids, int64_t bptt,
                           int64_t batch_size, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const data::StreamBatcher batcher(ids, batch_size);
  std::vector<State> states;
  double total = 0;
  int64_t count = 0;
  for (int64_t k = 0; k < batcher.num_windows(bptt); ++k) {
    train::throw_if_stopped();
    auto [x, y] = batcher.window(k, bptt);
    auto out = model.forward(x.to(device), states);
    states = std::move(out.states);
    const Tensor yd = y.to(device).reshape(-1);
    total += F::cross_entropy(out.logits.view({-1, out.logits.size(2)}), yd,
                              F::CrossEntropyFuncOptions().reduction(torch::kSum))
                 .item<double>();
    count += yd.numel();
  }
  model.train(was_training);
  return {count, total / std::max<int64_t>(count, 1)};
}

Loaded load_model(const std::string& checkpoint, const torch::Device& device) {
  auto saved = train::open_saved_run(checkpoint, "lm");
  Loaded m;
  m.config = LMConfig::read(saved.config);
  m.vocab = Vocab::from_string(train::get_string(saved.task, "vocab"), checkpoint + "#vocab");
  m.model = LanguageModel(m.config.model_options(m.vocab.size()));
  train::load_weights(*m.model, saved.model, checkpoint);
  train::check_finite(*m.model, checkpoint);
  m.model->to(device);
  m.model->eval();
  return m;
}

train::FitResult train(train::ConfigReader& config, const train::RunOptions& run) {
  const LMConfig c = LMConfig::read(config);
  const torch::Device device = train::setup_runtime(run, c.train.seed);
  const auto train_tokens = c.tokenize_file(c.train_path);
  Vocab vocab = build_vocab(c, train_tokens);
  const auto train_ids = encode_stream(vocab, train_tokens);
  auto valid_ids = encode_stream(vocab, c.tokenize_file(c.valid_path));
  report_unk_rate(c.train_path, vocab, train_ids, run.quiet);
  report_unk_rate(c.valid_path, vocab, valid_ids, run.quiet);
  LanguageModel model(c.model_options(vocab.size()));
  model->to(device);
  int64_t n_params = 0;
  for (const auto& p : model->parameters()) n_params += p.numel();
  if (!run.quiet) {
    fmt::print(stderr, "{}", config.resolved());
    fmt::print(stderr, "train: {} tokens, valid: {} tokens, vocabulary: {}, parameters: {}\n",
               train_ids.size() - 1, valid_ids.size() - 1, vocab.size(), n_params);
  }
  LMTask task(c, std::move(vocab), train_ids, std::move(valid_ids), model, device);
  auto r = train::fit(task, c.train, run, config.resolved());
  if (const auto best_path = train::test_checkpoint(run, r, c.test_path)) {
    // As word_language_model does: the test set once, by the model selected on validation.
    auto best = load_model(*best_path, device);
    const auto ids = encode_stream(best.vocab, best.config.tokenize_file(c.test_path));
    report_unk_rate(c.test_path, best.vocab, ids, run.quiet);
    const Perplexity p = evaluate_stream(*best.model, ids, c.bptt, c.eval_batch_size, device);
    r.test.values = {{"test_loss", p.loss}, {"test_ppl", p.perplexity()}};
    if (c.level == "char") r.test.values.push_back({"test_bpc", p.bits_per_token()});
    r.test.main = "test_loss";
    train::report_test(run, r.test);
  }
  return r;
}

Sampler::Sampler(const Loaded& m, SampleOptions options)
    : m_(m), o_(std::move(options)), gen_(at::detail::createCPUGenerator(o_.seed)) {
  const auto tokens = m.config.tokenize_line(o_.prompt);
  prompt_ = encode_stream(m.vocab, tokens);
  size_t text_tokens = 0, unknown = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == "<eos>") continue;
    ++text_tokens;
    unknown += prompt_[i + 1] == Vocab::kUnk;  // encode_stream starts with <eos>
  }
  prompt_unknown_ = text_tokens > 0 && unknown == text_tokens;
  // The text grows a token at a time, as detokenize() would join it: words after a space unless
  // a line (or the whole text, when there is no prompt) begins.
  line_start_ = o_.prompt.empty() || o_.prompt.back() == '\n';
}

bool Sampler::next(Tensor logits) {
  if (produced_ >= o_.max_length) return false;
  logits = logits.to(torch::kCPU, torch::kDouble).clone();
  const Tensor model_logp = torch::log_softmax(logits, 0);
  // Never draw tokens that are not text: padding and <bos> (and <unk> unless allowed, as
  // char-rnn's samples never print "<unk>").
  logits[Vocab::kPad] = -INFINITY;
  logits[Vocab::kBos] = -INFINITY;
  if (o_.no_unk) logits[Vocab::kUnk] = -INFINITY;
  int64_t next;
  if (o_.greedy || !(o_.temperature >= kGreedyBelowTemperature)) {
    next = logits.argmax().item<int64_t>();
  } else {
    // Shifted by the maximum first, so the division cannot overflow: every entry is <= 0.
    Tensor l = (logits - logits.max()) / o_.temperature;
    if (o_.top_k > 0 && o_.top_k < l.size(0)) {
      const double kth = std::get<0>(l.topk(o_.top_k))[-1].item<double>();
      l = l.masked_fill(l < kth, -INFINITY);
    }
    next = torch::multinomial(torch::softmax(l, 0), 1, false, gen_).item<int64_t>();
  }
  if (next == Vocab::kEos && o_.stop_at_eos && m_.config.level == "word") return false;
  logprob_ = model_logp[next].item<double>();
  const std::string token = m_.vocab.token(next);
  if (m_.config.level == "char") {
    piece_ = token;
  } else if (token == "<eos>") {
    piece_ = "\n";
  } else {
    piece_ = (line_start_ ? "" : " ") + token;
  }
  line_start_ = m_.config.level == "word" && piece_ == "\n";
  text_ += piece_;
  last_ = next;
  ++produced_;
  return true;
}

std::string sample(Loaded& m, const SampleOptions& o, const torch::Device& device,
                   const std::function<void(const std::string&)>& on_text) {
  torch::NoGradGuard no_grad;
  Sampler sampler(m, o);
  // A prompt the model has never seen a token of conditions on <unk> alone: say so.
  if (sampler.prompt_unknown()) {
    std::cerr << "warning: every token of the prompt is out of the model's vocabulary; it is "
                 "read as <unk> only, and the sample starts from that\n";
  }
  auto feed = [&](const std::vector<int64_t>& ids, std::vector<State>& states) {
    auto x = torch::tensor(ids, torch::kLong).view({-1, 1}).to(device);
    auto out = m.model->forward(x, states);
    states = std::move(out.states);
    return out.logits[-1][0];
  };
  std::vector<State> states;
  Tensor logits = feed(sampler.prompt_ids(), states);
  while (sampler.next(logits)) {
    if (on_text) on_text(sampler.piece());
    logits = feed({sampler.last_token()}, states);
  }
  return sampler.text();
}

train::Json score_json(const std::string& text, const LineScore& s) {
  return {{"text", text},
          {"tokens", s.tokens},
          {"logprob", s.logprob},
          {"perplexity", s.tokens > 0 ? train::Json(s.perplexity()) : train::Json(nullptr)}};
}

LineScore score_line(Loaded& m, const std::string& line, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  auto tokens = m.config.tokenize_line(line);
  if (m.config.level == "word") tokens.emplace_back("<eos>");
  const auto ids = encode_stream(m.vocab, tokens);
  if (ids.size() < 2) return {};
  // In bptt-sized chunks with the state carried across, as eval reads a file: memory stays
  // bounded however long the line, and the sum is the same as in one pass.
  const auto all = torch::tensor(ids, torch::kLong);
  const int64_t n = all.size(0) - 1, chunk = std::max<int64_t>(m.config.bptt, 1);
  std::vector<State> states;
  double lp = 0;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t T = std::min(chunk, n - start);
    const auto x = all.narrow(0, start, T).view({-1, 1}).to(device);
    const auto y = all.narrow(0, start + 1, T).view({-1, 1}).to(device);
    auto out = m.model->forward(x, states);
    states = std::move(out.states);
    const auto logp = torch::log_softmax(out.logits.squeeze(1).to(torch::kDouble), 1);
    lp += logp.gather(1, y).sum().item<double>();
  }
  return {lp, n};
}

double unk_rate(const data::Vocab& vocab, const std::vector<int64_t>& ids) {
  if (ids.size() < 2) return 0;
  int64_t unk = 0;
  for (size_t i = 1; i < ids.size(); ++i) unk += ids[i] == data::Vocab::kUnk;
  return static_cast<double>(unk) / static_cast<double>(ids.size() - 1);
}

void report_unk_rate(const std::string& file, const data::Vocab& vocab,
                     const std::vector<int64_t>& ids, bool quiet) {
  const double rate = unk_rate(vocab, ids);
  if (rate > kUnkWarning) {
    fmt::print(
        stderr,
        "warning: {:.1f}% of the tokens of {} are <unk> (out of the vocabulary); its perplexity "
        "measures little, as <unk> is easy to predict\n",
        100 * rate, file);
  } else if (!quiet) {
    fmt::print(stderr, "{}: {:.2f}% <unk>\n", file, 100 * rate);
  }
}

}  // namespace rnnkit::lm

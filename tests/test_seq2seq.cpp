// rnnkit-seq2seq's pieces: BLEU against hand-computed cases, beam search against the enumeration
// of every output of a toy model, beam 1 against greedy, the data readers' errors, and a tiny
// encoder-decoder that learns to reverse sequences in seconds.
#include <cmath>
#include <functional>
#include <map>
#include <random>

#include <torch/optim/adam.h>

#include "seq2seq/bleu.h"
#include "seq2seq/model.h"
#include "seq2seq/search.h"
#include "seq2seq/seq2seq.h"
#include "test_util.h"

using namespace rnnkit;
using namespace rnnkit::seq2seq;
using torch::Tensor;

// ---- BLEU ----

TEST(Bleu, HandComputedCases) {
  // Identical: 100.
  auto b = corpus_bleu({"a b c d e"}, {"a b c d e"}, "multi-bleu", false);
  EXPECT_DOUBLE_EQ(b.bleu, 100.0);
  EXPECT_EQ(b.kind, "multi-bleu");
  // No 4-gram in common: multi-bleu is 0; sacreBLEU smooths p4 to 100 / (2 · 1).
  b = corpus_bleu({"a b c d"}, {"a b c e"}, "multi-bleu", false);
  EXPECT_EQ(b.bleu, 0.0);
  EXPECT_DOUBLE_EQ(b.precisions[0], 75.0);
  EXPECT_NEAR(b.precisions[1], 200.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(b.precisions[2], 50.0);
  EXPECT_EQ(b.precisions[3], 0.0);
  b = corpus_bleu({"a b c d"}, {"a b c e"}, "sacrebleu", false);
  EXPECT_NEAR(b.bleu, std::pow(75.0 * (200.0 / 3) * 50.0 * 50.0, 0.25), 1e-9);
  EXPECT_EQ(b.kind, "sacrebleu-13a");
  // Brevity penalty: 4 tokens against 6, every n-gram right: 100 · exp(1 - 6/4).
  b = corpus_bleu({"the cat sat on"}, {"the cat sat on the mat"}, "multi-bleu", false);
  EXPECT_NEAR(b.bleu, 100 * std::exp(-0.5), 1e-9);
  EXPECT_NEAR(b.brevity_penalty, std::exp(-0.5), 1e-12);
  EXPECT_EQ(b.hyp_len, 4);
  EXPECT_EQ(b.ref_len, 6);
  // Empty hypotheses: 0, and no division by zero.
  b = corpus_bleu({"", ""}, {"a b c d", "e f g h"}, "multi-bleu", false);
  EXPECT_EQ(b.bleu, 0.0);
  EXPECT_EQ(b.hyp_len, 0);
  EXPECT_EQ(b.brevity_penalty, 0.0);
  EXPECT_EQ(corpus_bleu({""}, {"a"}, "sacrebleu", false).bleu, 0.0);
  // Clipping: "the" counts at most as often as the reference has it.
  b = corpus_bleu({"the the the the"}, {"the cat"}, "multi-bleu", false);
  EXPECT_DOUBLE_EQ(b.precisions[0], 25.0);
  // Corpus level: counts are summed before dividing (not a mean of sentence scores).
  b = corpus_bleu({"a b c d e", "x y z w"}, {"a b c d e", "x y z q"}, "multi-bleu", false);
  EXPECT_NEAR(b.precisions[0], 800.0 / 9, 1e-9);
  EXPECT_NEAR(b.precisions[3], 200.0 / 3, 1e-9);  // 2 of 3 4-grams
  // Lowercasing applies to both sides and is labelled.
  b = corpus_bleu({"A B C D"}, {"a b c d"}, "multi-bleu", true);
  EXPECT_DOUBLE_EQ(b.bleu, 100.0);
  EXPECT_EQ(b.kind, "multi-bleu-lc");
  EXPECT_THROW(corpus_bleu({"a"}, {"a", "b"}, "multi-bleu", false), std::invalid_argument);
  EXPECT_THROW(corpus_bleu({"a"}, {"a"}, "chrf", false), std::invalid_argument);
}

TEST(Bleu, Tokenizer13aSplitsAsSacreBleuDoes) {
  using V = std::vector<std::string>;
  EXPECT_EQ(tokenize_13a("Hello, world!"), (V{"Hello", ",", "world", "!"}));
  EXPECT_EQ(tokenize_13a("It costs 3.14 or 1,000 dollars."),
            (V{"It", "costs", "3.14", "or", "1,000", "dollars", "."}));
  EXPECT_EQ(tokenize_13a("1990-2000 well-known"), (V{"1990", "-", "2000", "well-known"}));
  EXPECT_EQ(tokenize_13a("&quot;hi&quot; &amp; (x)"), (V{"\"", "hi", "\"", "&", "(", "x", ")"}));
  EXPECT_EQ(tokenize_13a("a<skipped>b"), (V{"ab"}));
  EXPECT_EQ(tokenize_13a("Müller's café."),
            (V{"Müller's", "café", "."}));  // the apostrophe is not in 13a's classes
  EXPECT_EQ(tokenize_13a("x"), (V{"x"}));
}

// ---- search ----

namespace {

/// A model whose next-token distribution is a fixed pseudo-random function of the prefix, over
/// tokens {eos=3, 4, 5, 6} (0..2 are pad, unk, bos: banned). Every output up to length 4 can be
/// enumerated.
class ToyModel : public StepModel {
 public:
  explicit ToyModel(int64_t rows, uint64_t seed)
      : prefixes_(static_cast<size_t>(rows)), seeds_(static_cast<size_t>(rows), seed) {}
  /// One row per seed: each sentence its own distribution, carried through reorder().
  explicit ToyModel(std::vector<uint64_t> seeds)
      : prefixes_(seeds.size()), seeds_(std::move(seeds)) {}
  static constexpr int64_t V = 7;
  static Tensor logp_of(const std::vector<int64_t>& prefix, uint64_t seed) {
    uint64_t h = seed * 1000003u + 17;
    for (auto t : prefix) h = h * 1315423911u + static_cast<uint64_t>(t) + 7;
    auto gen = at::detail::createCPUGenerator(h);
    Tensor logits = at::randn({V}, gen, torch::TensorOptions().dtype(torch::kDouble)) * 2;
    return torch::log_softmax(logits, 0);
  }
  Tensor step(const Tensor& last) override {
    std::vector<Tensor> rows;
    for (int64_t i = 0; i < last.size(0); ++i) {
      auto& p = prefixes_[static_cast<size_t>(i)];
      const int64_t t = last[i].item<int64_t>();
      if (t != 2) p.push_back(t);
      rows.push_back(logp_of(p, seeds_[static_cast<size_t>(i)]));
    }
    return torch::stack(rows);
  }
  void reorder(const Tensor& index) override {
    std::vector<std::vector<int64_t>> next;
    std::vector<uint64_t> next_seeds;
    for (int64_t i = 0; i < index.size(0); ++i) {
      const auto from = static_cast<size_t>(index[i].item<int64_t>());
      next.push_back(prefixes_.at(from));
      next_seeds.push_back(seeds_.at(from));
    }
    prefixes_ = std::move(next);
    seeds_ = std::move(next_seeds);
  }

 private:
  std::vector<std::vector<int64_t>> prefixes_;
  std::vector<uint64_t> seeds_;
};

struct Scored {
  std::vector<int64_t> tokens;
  double logprob, score;
};

/// Every output of up to max_len tokens over {4, 5, 6}, ending in <eos> (forced after max_len).
std::vector<Scored> enumerate(uint64_t seed, int64_t max_len, double alpha) {
  std::vector<Scored> out;
  std::function<void(std::vector<int64_t>, double)> rec = [&](std::vector<int64_t> p, double lp) {
    const Tensor l = ToyModel::logp_of(p, seed);
    const double end = lp + l[3].item<double>();
    out.push_back({p, end, end / std::pow(static_cast<double>(p.size() + 1), alpha)});
    if (static_cast<int64_t>(p.size()) == max_len) return;
    for (int64_t t = 4; t <= 6; ++t) {
      auto q = p;
      q.push_back(t);
      rec(q, lp + l[t].item<double>());
    }
  };
  rec({}, 0);
  std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.score > b.score; });
  return out;
}

SearchOptions toy_options(int64_t sentences, int64_t beam, double alpha, int64_t n_best = 1) {
  SearchOptions o;
  o.beam = beam;
  o.alpha = alpha;
  o.n_best = n_best;
  o.banned = {0, 1, 2};
  o.max_lengths.assign(static_cast<size_t>(sentences), 4);
  return o;
}

}  // namespace

TEST(BeamSearch, FindsTheBestOfEveryEnumeratedOutput) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const auto all = enumerate(seed, 4, 0.0);
    ASSERT_EQ(all.size(), 1u + 3 + 9 + 27 + 81);
    ToyModel m(1, seed);
    const auto got = beam_search(m, toy_options(1, 81, 0.0, 5));
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(got[0].size(), 5u) << "seed " << seed;
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_EQ(got[0][k].tokens, all[k].tokens) << "seed " << seed << " rank " << k;
      EXPECT_NEAR(got[0][k].logprob, all[k].logprob, 1e-12);
    }
    // With length normalisation the search still returns the best normalised output here.
    const auto norm = enumerate(seed, 4, 1.0);
    ToyModel m2(1, seed);
    const auto got2 = beam_search(m2, toy_options(1, 81, 1.0, 3));
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(got2[0][k].tokens, norm[k].tokens) << "seed " << seed << " rank " << k;
      EXPECT_NEAR(got2[0][k].score, norm[k].score, 1e-12);
    }
  }
}

TEST(BeamSearch, BeamOneIsExactlyGreedyAndSentencesDoNotInteract) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    ToyModel a(1, seed), b(1, seed);
    const auto beam = beam_search(a, toy_options(1, 1, 1.0));
    const auto greedy = greedy_search(b, toy_options(1, 1, 1.0));
    ASSERT_EQ(beam[0].size(), 1u);
    EXPECT_EQ(beam[0][0].tokens, greedy[0].tokens) << "seed " << seed;
    EXPECT_EQ(beam[0][0].logprob, greedy[0].logprob);
    EXPECT_EQ(beam[0][0].score, greedy[0].score);
  }
  // Three different sentences (each its own distribution) in one batch get what each gets
  // alone, in their order: a mix-up between rows, or one sentence's beams leaking into
  // another's, would show. The three must also differ from one another, or nothing is shown.
  const std::vector<uint64_t> seeds{5, 11, 23};
  ToyModel batch(seeds);
  const auto three = beam_search(batch, toy_options(3, 4, 1.0, 2));
  ASSERT_EQ(three.size(), 3u);
  for (size_t i = 0; i < seeds.size(); ++i) {
    ToyModel one(1, seeds[i]);
    const auto alone = beam_search(one, toy_options(1, 4, 1.0, 2));
    ASSERT_EQ(three[i].size(), alone[0].size()) << "sentence " << i;
    for (size_t k = 0; k < three[i].size(); ++k) {
      EXPECT_EQ(three[i][k].tokens, alone[0][k].tokens) << "sentence " << i << ", hypothesis " << k;
      EXPECT_DOUBLE_EQ(three[i][k].score, alone[0][k].score) << "sentence " << i;
    }
  }
  EXPECT_FALSE(three[0][0].tokens == three[1][0].tokens &&
               three[1][0].tokens == three[2][0].tokens && three[0][0].score == three[1][0].score)
      << "the three sentences are not told apart";
}

TEST(BeamSearch, RefusesBadOptions) {
  EXPECT_THROW(check_search_options(0, 1, 1.0), std::invalid_argument);
  EXPECT_THROW(check_search_options(1000000, 1, 1.0), std::invalid_argument);
  EXPECT_THROW(check_search_options(5, 6, 1.0), std::invalid_argument);
  EXPECT_THROW(check_search_options(5, 1, std::nan("")), std::invalid_argument);
  EXPECT_THROW(check_search_options(5, 1, -1), std::invalid_argument);
  TranslateOptions o;
  o.max_length = 1000000000;
  EXPECT_THROW(check_translate_options(o), std::invalid_argument);
  o = TranslateOptions();
  o.max_length_factor = INFINITY;
  EXPECT_THROW(check_translate_options(o), std::invalid_argument);
}

// ---- data ----

TEST(Seq2SeqData, ErrorsNameTheFileAndLine) {
  const auto dir = rnnkit_test::temp_dir("seq2seq_data");
  Seq2SeqConfig c;
  c.max_length = 3;
  auto expect_error = [&](const std::string& src, const std::string& tgt, const std::string& want) {
    const auto s = rnnkit_test::write_file(dir, "s.txt", src);
    const auto t = rnnkit_test::write_file(dir, "t.txt", tgt);
    try {
      read_parallel(c, s, t);
      ADD_FAILURE() << "no error for " << want;
    } catch (const data::DataError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error("a b\nc d\n", "x\n", "t.txt: ends after 1 lines");
  expect_error("a b\n\n", "x\ny\n", "s.txt:2: an empty line");
  expect_error("a b\nc d e f\n", "x\ny\n", "s.txt:2: 4 tokens, more than data.max_length = 3");
  expect_error("a\xff\n", "x\n", "s.txt:1");
  c.drop_long = true;
  const auto s = rnnkit_test::write_file(dir, "s.txt", "a b\nc d e f\ng\n");
  const auto t = rnnkit_test::write_file(dir, "t.txt", "x\ny\nz z z z\n");
  const auto p = read_parallel(c, s, t);
  EXPECT_EQ(p.source.size(), 1u);
  EXPECT_EQ(p.dropped, 2);
  // Character level: spaces are a token, runs of them one.
  c.tokenize = "char";
  EXPECT_EQ(c.tokenize_line("3  mar "),
            (std::vector<std::string>{"3", "\xe2\x96\x81", "m", "a", "r"}));
  EXPECT_EQ(c.detokenize(c.tokenize_line("3  mar ")), "3 mar");
}

// ---- learning ----

TEST(Seq2SeqLearning, ATinyModelLearnsToReverseSequences) {
  torch::manual_seed(1);
  at::set_num_threads(1);
  // Tokens 4..9; sources of 3 to 6 tokens; the target is the source reversed.
  const int64_t V = 10, B = 32;
  auto data = [](int64_t n, uint64_t seed) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::vector<std::vector<int64_t>> out;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<int64_t> s(3 + rng() % 4);
      for (auto& t : s) t = 4 + static_cast<int64_t>(rng() % 6);
      out.push_back(s);
    }
    return out;
  };
  auto batch = [&](const std::vector<std::vector<int64_t>>& seqs) {
    const auto n = static_cast<int64_t>(seqs.size());
    Tensor src = torch::zeros({7, n}, torch::kLong), tin = torch::zeros({7, n}, torch::kLong),
           tout = torch::zeros({7, n}, torch::kLong), len = torch::zeros({n}, torch::kLong);
    for (int64_t j = 0; j < n; ++j) {
      const auto& s = seqs[static_cast<size_t>(j)];
      const auto L = static_cast<int64_t>(s.size());
      for (int64_t t = 0; t < L; ++t) src[t][j] = s[static_cast<size_t>(t)];
      src[L][j] = 3;  // <eos>
      len[j] = L + 1;
      tin[0][j] = 2;
      for (int64_t t = 0; t < L; ++t) {
        tin[t + 1][j] = s[static_cast<size_t>(L - 1 - t)];
        tout[t][j] = s[static_cast<size_t>(L - 1 - t)];
      }
      tout[L][j] = 3;
    }
    return std::make_tuple(src, len, tin, tout);
  };
  Seq2Seq model(
      Seq2SeqOptions(V, V, RNNOptions("gru", 0, 32)).embedding_size(16).attention("additive"));
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(0.01));
  const auto train = data(B * 400, 1);
  for (int64_t step = 0; step < 400; ++step) {
    std::vector<std::vector<int64_t>> b(train.begin() + step * B, train.begin() + (step + 1) * B);
    auto [src, len, tin, tout] = batch(b);
    const Tensor logits = model->forward(src, len, tin);
    const Tensor loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, V}), tout.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(0));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  model->eval();
  torch::NoGradGuard g;
  const auto test = data(100, 99);
  auto [src, len, tin, tout] = batch(test);
  Seq2SeqStepper stepper(*model, model->encode(src, len));
  SearchOptions so;
  so.banned = {0, 1, 2};
  for (const auto& s : test) so.max_lengths.push_back(static_cast<int64_t>(s.size()) * 2);
  const auto hyps = greedy_search(stepper, so);
  int correct = 0;
  for (size_t i = 0; i < test.size(); ++i)
    correct += hyps[i].tokens == std::vector<int64_t>(test[i].rbegin(), test[i].rend());
  EXPECT_GE(correct, 90) << "of 100 sequences reversed exactly";
  // Beam 1 on the trained model gives greedy's output, token for token.
  Seq2SeqStepper s2(*model, model->encode(src, len));
  so.beam = 1;
  const auto beam = beam_search(s2, so);
  for (size_t i = 0; i < test.size(); ++i) EXPECT_EQ(beam[i][0].tokens, hyps[i].tokens) << i;
}

// apps/ner and the CRF head: conlleval's numbers, scheme constraints, the CRF against brute
// force, the tagger in float64, tokenization, and train / eval / predict end to end.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <rnnkit/train/config.h>
#include "ner/conlleval.h"
#include "ner/ner.h"
#include "test_train_util.h"

using namespace rnnkit;
using data::TagScheme;
using rnnkit_test::max_abs_diff;
using torch::Tensor;
namespace fs = std::filesystem;

namespace {

/// Reads "token gold guessed" lines (blank lines between sentences) into conlleval.
ner::Conlleval conlleval_file(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  ner::Conlleval ev;
  std::vector<std::string> gold, guessed;
  auto flush = [&] {
    if (!gold.empty()) ev.add(gold, guessed);
    gold.clear();
    guessed.clear();
  };
  for (std::string line; std::getline(in, line);) {
    std::istringstream is(line);
    std::string tok, g, p;
    if (!(is >> tok >> g >> p)) {
      flush();
      continue;
    }
    gold.push_back(g);
    guessed.push_back(p);
  }
  flush();
  return ev;
}

std::string data_file(const std::string& name) {
  return (fs::path(RNNKIT_SOURCE_DIR) / "tests" / "data" / name).string();
}

ner::Conlleval eval_one(const std::vector<std::string>& gold,
                        const std::vector<std::string>& guessed) {
  ner::Conlleval ev;
  ev.add(gold, guessed);
  return ev;
}

}  // namespace

// Numbers from conlleval.pl (version 2004-01-26) run on the same files:
//   perl conlleval.pl < tests/data/conlleval_edge.txt
TEST(Conlleval, MatchesTheScriptOnEdgeCases) {
  const auto ev = conlleval_file(data_file("conlleval_edge.txt"));
  EXPECT_EQ(ev.tokens(), 29);
  EXPECT_EQ(ev.found_correct(), 10);
  EXPECT_EQ(ev.found_guessed(), 9);
  EXPECT_EQ(ev.correct_chunks(), 4);
  const std::string expected =
      "processed 29 tokens with 10 phrases; found: 9 phrases; correct: 4.\n"
      "accuracy:  75.86%; precision:  44.44%; recall:  40.00%; FB1:  42.11\n"
      "              LOC: precision:  66.67%; recall:  50.00%; FB1:  57.14  3\n"
      "             MISC: precision:  50.00%; recall: 100.00%; FB1:  66.67  2\n"
      "              ORG: precision:   0.00%; recall:   0.00%; FB1:   0.00  2\n"
      "              PER: precision:  50.00%; recall:  33.33%; FB1:  40.00  2\n";
  EXPECT_EQ(ev.report(), expected);
}

// 60 seeded random sentences mixing B-, I-, E-, S- and O tags of four types.
TEST(Conlleval, MatchesTheScriptOnRandomTags) {
  const auto ev = conlleval_file(data_file("conlleval_random.txt"));
  const std::string expected =
      "processed 422 tokens with 248 phrases; found: 254 phrases; correct: 160.\n"
      "accuracy:  70.38%; precision:  62.99%; recall:  64.52%; FB1:  63.75\n"
      "              LOC: precision:  59.78%; recall:  68.75%; FB1:  63.95  92\n"
      "             MISC: precision:  59.38%; recall:  61.29%; FB1:  60.32  32\n"
      "              ORG: precision:  73.21%; recall:  65.08%; FB1:  68.91  56\n"
      "              PER: precision:  60.81%; recall:  60.81%; FB1:  60.81  74\n";
  EXPECT_EQ(ev.report(), expected);
}

TEST(Conlleval, WorkedIob1Cases) {
  // I-X I-X is one entity; I-X B-X is two.
  EXPECT_EQ(eval_one({"I-PER", "I-PER"}, {"I-PER", "B-PER"}).found_correct(), 1);
  EXPECT_EQ(eval_one({"I-PER", "I-PER"}, {"I-PER", "B-PER"}).found_guessed(), 2);
  EXPECT_EQ(eval_one({"I-PER", "I-PER"}, {"I-PER", "B-PER"}).correct_chunks(), 0);
  // A type change inside a run of I- tags starts a new entity.
  const auto change = eval_one({"I-ORG", "I-LOC"}, {"I-ORG", "I-LOC"});
  EXPECT_EQ(change.found_correct(), 2);
  EXPECT_EQ(change.correct_chunks(), 2);
  // B- after O (allowed in IOB2, unusual in IOB1) starts an entity; a guess that ends one
  // token early is wrong, and so is one that runs one token longer.
  EXPECT_EQ(eval_one({"O", "B-LOC", "I-LOC", "O"}, {"O", "B-LOC", "O", "O"}).correct_chunks(), 0);
  EXPECT_EQ(eval_one({"O", "B-LOC", "O"}, {"O", "B-LOC", "I-LOC"}).correct_chunks(), 0);
  // An entity at the very end of a sentence counts.
  const auto end = eval_one({"O", "I-MISC"}, {"O", "I-MISC"});
  EXPECT_EQ(end.correct_chunks(), 1);
  EXPECT_DOUBLE_EQ(end.f1(), 1.0);
  // A sentence break ends every entity: the same tags in two sentences are two entities.
  ner::Conlleval two;
  two.add({"I-PER"}, {"I-PER"});
  two.add({"I-PER"}, {"I-PER"});
  EXPECT_EQ(two.found_correct(), 2);
  EXPECT_EQ(two.correct_chunks(), 2);
  // No entity anywhere: everything is zero, not NaN.
  const auto none = eval_one({"O"}, {"O"});
  EXPECT_EQ(none.f1(), 0.0);
  EXPECT_DOUBLE_EQ(none.accuracy(), 1.0);
  EXPECT_THROW(eval_one({"O"}, {"O", "O"}), std::invalid_argument);
}

TEST(TagSchemes, AllowedTransitions) {
  using data::allowed_transition;
  // IOB2: I-X only after B-X or I-X.
  EXPECT_FALSE(allowed_transition("O", "I-PER", TagScheme::kIOB2));
  EXPECT_FALSE(allowed_transition("", "I-PER", TagScheme::kIOB2));
  EXPECT_FALSE(allowed_transition("B-LOC", "I-PER", TagScheme::kIOB2));
  EXPECT_TRUE(allowed_transition("B-PER", "I-PER", TagScheme::kIOB2));
  EXPECT_TRUE(allowed_transition("I-PER", "", TagScheme::kIOB2));
  // IOB1: B-X only between two X entities.
  EXPECT_FALSE(allowed_transition("O", "B-PER", TagScheme::kIOB1));
  EXPECT_FALSE(allowed_transition("", "B-PER", TagScheme::kIOB1));
  EXPECT_TRUE(allowed_transition("I-PER", "B-PER", TagScheme::kIOB1));
  EXPECT_TRUE(allowed_transition("O", "I-PER", TagScheme::kIOB1));
  // IOBES: B/I must continue, E/S must close.
  EXPECT_FALSE(allowed_transition("B-PER", "O", TagScheme::kIOBES));
  EXPECT_FALSE(allowed_transition("I-PER", "", TagScheme::kIOBES));
  EXPECT_FALSE(allowed_transition("B-PER", "E-LOC", TagScheme::kIOBES));
  EXPECT_FALSE(allowed_transition("S-PER", "I-PER", TagScheme::kIOBES));
  EXPECT_TRUE(allowed_transition("B-PER", "E-PER", TagScheme::kIOBES));
  EXPECT_TRUE(allowed_transition("E-PER", "S-PER", TagScheme::kIOBES));
  EXPECT_TRUE(allowed_transition("", "S-LOC", TagScheme::kIOBES));
  EXPECT_TRUE(allowed_transition("O", "I-PER", TagScheme::kIO));

  const auto tags = ner::tag_inventory({"LOC", "PER"}, TagScheme::kIOBES);
  EXPECT_EQ(tags, (std::vector<std::string>{"O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-PER",
                                            "I-PER", "E-PER", "S-PER"}));
  const auto k = ner::constraints(tags, TagScheme::kIOBES);
  EXPECT_FALSE(k.allowed[0][2].item<bool>());  // O -> I-LOC
  EXPECT_TRUE(k.allowed[1][3].item<bool>());   // B-LOC -> E-LOC
  EXPECT_FALSE(k.end[1].item<bool>());         // a sentence cannot end on B-LOC
  EXPECT_TRUE(k.start[4].item<bool>());        // ... and may start with S-LOC
}

namespace {

/// Every tag path of length n over K tags.
std::vector<std::vector<int64_t>> all_paths(int64_t K, int64_t n) {
  std::vector<std::vector<int64_t>> out{{}};
  for (int64_t t = 0; t < n; ++t) {
    std::vector<std::vector<int64_t>> next;
    for (const auto& p : out) {
      for (int64_t k = 0; k < K; ++k) {
        next.push_back(p);
        next.back().push_back(k);
      }
    }
    out = std::move(next);
  }
  return out;
}

/// score(y) written out from the equation, one path at a time.
double path_score(const CRFImpl& crf, const Tensor& e, const std::vector<int64_t>& y) {
  const auto A = crf.masked_transitions();
  double s = crf.masked_start()[y[0]].item<double>() + crf.masked_end()[y.back()].item<double>();
  for (size_t t = 0; t < y.size(); ++t) {
    s += e[static_cast<int64_t>(t)][y[t]].item<double>();
    if (t > 0) s += A[y[t - 1]][y[t]].item<double>();
  }
  return s;
}

CRF constrained_crf() {
  // Tags O, B-X, I-X, E-X, S-X in IOBES.
  CRF crf(5);
  crf->to(torch::kDouble);
  const auto k = ner::constraints({"O", "B-X", "I-X", "E-X", "S-X"}, TagScheme::kIOBES);
  crf->set_constraints(k.allowed, k.start, k.end);
  return crf;
}

}  // namespace

TEST(CRF, AgreesWithBruteForceEnumeration) {
  torch::manual_seed(5);
  for (const bool constrained : {false, true}) {
    CRF crf = constrained ? constrained_crf() : CRF(5);
    crf->to(torch::kDouble);
    const int64_t K = 5, T = 5;
    const Tensor e = torch::randn({3, T, K}, rnnkit_test::f64());
    const Tensor lengths = torch::tensor({5, 3, 1}, torch::kLong);
    const Tensor logz = crf->log_partition(e, lengths);
    const Tensor marginals = crf->marginals(e, lengths);
    const auto best = crf->decode(e, lengths);
    for (int64_t b = 0; b < 3; ++b) {
      const int64_t n = lengths[b].item<int64_t>();
      const Tensor eb = e[b].narrow(0, 0, n);
      double top = -INFINITY;
      std::vector<int64_t> argmax;
      std::vector<double> scores;
      for (const auto& y : all_paths(K, n)) {
        const double s = path_score(*crf, eb, y);
        scores.push_back(s);
        if (s > top) top = s, argmax = y;
      }
      const double ref =
          torch::logsumexp(torch::tensor(scores, rnnkit_test::f64()), 0).item<double>();
      EXPECT_NEAR(logz[b].item<double>(), ref, 1e-10)
          << "b=" << b << " constrained=" << constrained;
      // Marginals: the probability mass of the paths through (t, j), by enumeration.
      const auto paths = all_paths(K, n);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t j = 0; j < K; ++j) {
          double mass = 0;
          for (size_t i = 0; i < paths.size(); ++i) {
            if (paths[i][static_cast<size_t>(t)] == j) mass += std::exp(scores[i] - ref);
          }
          EXPECT_NEAR(marginals[b][t][j].item<double>(), mass, 1e-10)
              << "b=" << b << " t=" << t << " j=" << j << " constrained=" << constrained;
        }
      }
      EXPECT_EQ(marginals[b].narrow(0, n, T - n).abs().sum().item<double>(), 0.0)
          << "zeros past the length";
      EXPECT_EQ(best[b], argmax) << "b=" << b << " constrained=" << constrained;
      // score() of that path through the batched code agrees too.
      Tensor tags = torch::zeros({3, T}, torch::kLong);
      for (int64_t t = 0; t < n; ++t) tags[b][t] = argmax[t];
      EXPECT_NEAR(crf->score(e, tags, lengths)[b].item<double>(), top, 1e-10);
    }
  }
}

TEST(CRF, ViterbiNeverTakesAForbiddenTransition) {
  torch::manual_seed(9);
  CRF crf = constrained_crf();
  const std::vector<std::string> names{"O", "B-X", "I-X", "E-X", "S-X"};
  // Emissions that push hard towards forbidden paths (I-X first, O after B-X).
  const Tensor e = torch::randn({20, 12, 5}, rnnkit_test::f64()) * 10;
  const Tensor lengths = torch::randint(1, 13, {20}, torch::kLong);
  for (const auto& path : crf->decode(e, lengths)) {
    std::string prev;
    for (auto k : path) {
      EXPECT_TRUE(data::allowed_transition(prev, names[k], TagScheme::kIOBES))
          << prev << " -> " << names[k];
      prev = names[k];
    }
    EXPECT_TRUE(data::allowed_transition(prev, "", TagScheme::kIOBES)) << prev << " at the end";
  }
  // A forbidden gold path has zero probability: an infinite loss.
  const Tensor bad = torch::tensor({{0, 2}}, torch::kLong);  // O -> I-X
  EXPECT_TRUE(std::isinf(
      crf->nll(e.narrow(0, 0, 1).narrow(1, 0, 2), bad, torch::tensor({2}, torch::kLong))[0]
          .item<double>()));
}

TEST(CRF, GradientMatchesFiniteDifferences) {
  torch::manual_seed(4);
  CRF crf = constrained_crf();
  const Tensor e = torch::randn({2, 6, 5}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor lengths = torch::tensor({6, 4}, torch::kLong);
  const Tensor tags = torch::tensor({{1, 2, 3, 0, 4, 0}, {4, 0, 1, 3, 0, 0}}, torch::kLong);
  auto loss = [&] { return crf->nll(e, tags, lengths).sum(); };
  ASSERT_TRUE(std::isfinite(loss().item<double>()));
  std::vector<Tensor> vars{e, crf->transitions, crf->start_transitions, crf->end_transitions};
  rnnkit_test::gradcheck(loss, vars, "crf nll");
  // Nothing flows into forbidden transitions.
  EXPECT_EQ(
      crf->transitions.grad().masked_select(crf->allowed.logical_not()).abs().sum().item<double>(),
      0.0);
}

TEST(CRF, PaddingDoesNotChangeAnything) {
  torch::manual_seed(2);
  CRF crf = constrained_crf();
  const Tensor e = torch::randn({2, 7, 5}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({7, 3}, torch::kLong);
  const Tensor alone = e[1].narrow(0, 0, 3).unsqueeze(0);
  const Tensor one = torch::tensor({3}, torch::kLong);
  EXPECT_NEAR(crf->log_partition(e, lengths)[1].item<double>(),
              crf->log_partition(alone, one)[0].item<double>(), 1e-12);
  EXPECT_EQ(crf->decode(e, lengths)[1], crf->decode(alone, one)[0]);
  rnnkit_test::expect_error(
      [&] {
        crf->log_partition(e, torch::tensor({8, 3}, torch::kLong));
      },
      {"lengths in [1, 7]", "8"});
  rnnkit_test::expect_error([&] { crf->log_partition(e.narrow(2, 0, 4), lengths); },
                            {"emissions [B, T, 5]", "[2, 7, 4]"});
  rnnkit_test::expect_error(
      [&] {
        crf->set_constraints(torch::ones({4, 4}), torch::ones({5}), torch::ones({5}));
      },
      {"allowed [5, 5]", "[4, 4]"});
}

namespace {

ner::TaggerBatch tiny_batch() {
  // Two sentences of 4 and 2 words; characters per word.
  ner::TaggerBatch b;
  b.words = torch::tensor({5, 6, 7, 8, 9, 4, 0, 0}, torch::kLong).view({2, 4});
  b.casing = torch::tensor({1, 3, 4, 5, 5, 3, 0, 0}, torch::kLong).view({2, 4});
  b.lengths = torch::tensor({4, 2}, torch::kLong);
  b.chars = torch::tensor({4, 5, 6, 4, 7, 0, 8, 0, 0, 9, 10, 11, 5, 5, 0, 6, 0, 0}, torch::kLong)
                .view({6, 3});
  b.char_lengths = torch::tensor({3, 2, 1, 3, 2, 1}, torch::kLong);
  b.positions = torch::tensor({0, 1, 2, 3, 4, 5}, torch::kLong);
  b.tags = torch::tensor({1, 2, 3, 0, 4, 0, 0, 0}, torch::kLong).view({2, 4});
  return b;
}

/// The second sentence of tiny_batch() alone, its characters padded to its own longest word (2,
/// where the batch pads to 3).
ner::TaggerBatch second_alone() {
  ner::TaggerBatch b;
  b.words = torch::tensor({9, 4}, torch::kLong).view({1, 2});
  b.casing = torch::tensor({5, 3}, torch::kLong).view({1, 2});
  b.lengths = torch::tensor({2}, torch::kLong);
  b.chars = torch::tensor({5, 5, 6, 0}, torch::kLong).view({2, 2});
  b.char_lengths = torch::tensor({2, 1}, torch::kLong);
  b.positions = torch::tensor({0, 1}, torch::kLong);
  b.tags = torch::tensor({4, 0}, torch::kLong).view({1, 2});
  return b;
}

}  // namespace

class TaggerVariants : public ::testing::TestWithParam<std::string> {};

// Every char encoder and decoder, in float64: padding changes nothing, the loss is finite and
// its gradient matches finite differences.
TEST_P(TaggerVariants, Float64PaddingAndGradients) {
  const std::string v = GetParam();
  torch::manual_seed(8);
  auto o = ner::TaggerOptions(12, 12, 5,
                              RNNOptions(v == "gru_softmax" ? "gru" : "lstm", 0, 3).num_layers(2))
               .word_embedding_size(4)
               .char_embedding_size(3)
               .char_hidden_size(3)
               .casing_size(2)
               .char_features(v == "cnn"   ? ner::CharFeatures::kCNN
                              : v == "rnn" ? ner::CharFeatures::kRNN
                                           : ner::CharFeatures::kNone)
               .decoder(v == "gru_softmax" ? ner::Decoder::kSoftmax : ner::Decoder::kCRF);
  ner::Tagger m(o);
  m->to(torch::kDouble);
  m->eval();
  const auto s = m->forward(tiny_batch());
  EXPECT_EQ(s.scalar_type(), torch::kDouble);
  EXPECT_EQ(s.sizes(), torch::IntArrayRef({2, 4, 5}));
  EXPECT_LE(max_abs_diff(s[1].narrow(0, 0, 2), m->forward(second_alone())[0]), 1e-12);
  EXPECT_EQ(m->decode(tiny_batch())[1], m->decode(second_alone())[0]);
  auto loss = [&] { return m->loss(tiny_batch()); };
  ASSERT_TRUE(std::isfinite(loss().item<double>()));
  // A few small tensors, not all: each element costs two forward passes.
  std::vector<Tensor> vars{m->output->bias, m->casing->weight};
  if (m->char_cnn) vars.push_back(m->char_cnn->bias);
  if (m->char_rnn) vars.push_back(m->char_rnn->parameters().back());
  if (m->crf) vars.push_back(m->crf->end_transitions);
  rnnkit_test::gradcheck(loss, vars, "tagger " + v);
}
INSTANTIATE_TEST_SUITE_P(Ner, TaggerVariants,
                         ::testing::Values("cnn", "rnn", "none", "gru_softmax"));

TEST(NerText, TokenizerFollowsConllConventions) {
  const std::string line = "Mr. Smith's car (a \"Ford\") isn't in the U.S. today, said J. Doe.";
  std::vector<std::string> toks;
  for (const auto& t : data::tokenize_ptb(line)) {
    toks.push_back(t.text);
    EXPECT_EQ(line.substr(t.begin, t.end - t.begin), t.text);
  }
  EXPECT_EQ(toks,
            (std::vector<std::string>{"Mr",    ".",  "Smith", "'s", "car", "(",  "a",   "\"",
                                      "Ford",  "\"", ")",     "is", "n't", "in", "the", "U.S.",
                                      "today", ",",  "said",  "J.", "Doe", "."}));
  EXPECT_TRUE(data::tokenize_ptb("   ").empty());
  EXPECT_EQ(data::code_point_offset("Zoë a", 4), 3u);  // ë is two bytes
  EXPECT_EQ(ner::casing("1996"), ner::kNumeric);
  EXPECT_EQ(ner::casing("1996-08-22"), ner::kMainlyNumeric);
  EXPECT_EQ(ner::casing("EU"), ner::kAllUpper);
  EXPECT_EQ(ner::casing("Peter"), ner::kInitialUpper);
  EXPECT_EQ(ner::casing("lamb"), ner::kAllLower);
  EXPECT_EQ(ner::casing("iPod"), ner::kOther);
  EXPECT_EQ(ner::casing("A4"), ner::kAllUpper);  // as Python's isupper()
  EXPECT_EQ(ner::casing("iPhone4"), ner::kContainsDigit);
}

namespace {

std::string toy_config(const std::string& dir, const std::string& extra = "") {
  rnnkit_test::write_file(dir, "train.conll", rnnkit_test::toy_conll(60, 0));
  rnnkit_test::write_file(dir, "dev.conll", rnnkit_test::toy_conll(12, 3));
  return rnnkit_test::write_file(
      dir, "ner.toml",
      "[data]\ntrain = \"train.conll\"\nvalid = \"dev.conll\"\n"
      "[model]\nword_embedding_size = 8\nchar_embedding_size = 4\nchar_hidden_size = "
      "4\ncasing_size = 2\n"
      "hidden_size = 8\ndropout = 0.0\n" +
          extra + "[train]\nepochs = 8\nbatch_size = 8\nlearning_rate = 0.02\nseed = 3\n");
}

}  // namespace

TEST(NerModel, CasingClassesAreUnicodeAware) {
  EXPECT_EQ(ner::casing("\u0391\u0398\u0397\u039d\u0391"), ner::casing("ATHENS"));  // all upper
  EXPECT_EQ(ner::casing("\u0141\u00f3d\u017a"), ner::casing("Paris"));              // initial upper
  EXPECT_EQ(ner::casing("\u043f\u0440\u0438\u0432\u0435\u0442"),
            ner::casing("hello"));                            // all lower
  EXPECT_EQ(ner::casing("\u0663\u0664"), ner::casing("34"));  // numeric
  EXPECT_NE(ner::casing("ATHENS"), ner::casing("Paris"));
}

TEST(NerApp, TrainsEvaluatesAndPredictsInTheInputScheme) {
  const auto dir = rnnkit_test::temp_dir("ner_e2e");
  train::ConfigReader config(toy_config(dir));
  const auto r = ner::train(config, rnnkit_test::quiet_run(dir + "/run"));
  EXPECT_GE(r.best.get("val_f1"), 0.95) << "the toy data is easy";

  auto m = ner::load_model(dir + "/run/best.pt", torch::kCPU);
  EXPECT_EQ(m.lexicon.input_scheme, TagScheme::kIOB1);
  EXPECT_EQ(m.lexicon.internal_scheme, TagScheme::kIOBES);
  const auto ev = ner::evaluate(m, dir + "/dev.conll", torch::kCPU);
  EXPECT_NEAR(ev.f1(), r.best.get("val_f1"), 1e-12) << "eval reproduces the validation score";
  // Output in IOB1: "Oslo Lima" as two adjacent places gets I-LOC B-LOC back.
  const auto tags = m.tag(
      {{"we", "met", "Anna", "Smith", "in", "Oslo", "Lima", "with", "Boris", "."}}, torch::kCPU);
  EXPECT_EQ(tags[0], (std::vector<std::string>{"O", "O", "I-PER", "I-PER", "O", "I-LOC", "B-LOC",
                                               "O", "I-PER", "O"}));
  // Inside, the model speaks IOBES.
  const auto internal = m.tag_internal({{"we", "met", "Anna", "Smith", "in", "Oslo"}}, torch::kCPU);
  EXPECT_EQ(internal[0], (std::vector<std::string>{"O", "O", "B-PER", "E-PER", "O", "S-LOC"}));
}

// Mixed precision: the fixed-seed toy run in bf16 ends near the fp32 run (test_apps.cpp's
// Precision test explains the tolerance), with the same perfect F1 on the easy toy data.
TEST(NerApp, Bf16RunEndsNearTheFp32Run) {
  const auto dir = rnnkit_test::temp_dir("ner_bf16");
  const auto r = rnnkit_test::fp32_and_bf16(ner::train, toy_config(dir), dir);
  EXPECT_NEAR(r.loss16, r.loss32, 0.05 * r.loss32 + 0.01) << "train loss";
  EXPECT_NE(r.loss16, r.loss32) << "the bf16 run equals the fp32 run: nothing ran in bf16";
  EXPECT_GE(r.bf16.best.get("val_f1"), 0.95);
  EXPECT_NEAR(r.bf16.best.get("val_f1"), r.fp32.best.get("val_f1"), 0.05);
}

TEST(NerApp, BinaryNameTagsThroughRenaming) {
  // The course's example: 1 for words that are part of a name, 0 otherwise.
  const auto dir = rnnkit_test::temp_dir("ner_binary");
  std::string text;
  const char* first[] = {"Harry", "Hermione", "Ron", "Luna", "Neville", "Ginny"};
  const char* last[] = {"Potter", "Granger", "Weasley", "Lovegood", "Longbottom"};
  for (int i = 0; i < 60; ++i) {
    text += std::string(first[i % 6]) + "\t1\n" + last[i % 5] + "\t1\nand\t0\n" +
            first[(i + 2) % 6] + "\t1\n" + last[(i + 3) % 5] +
            "\t1\ninvented\t0\na\t0\nnew\t0\nspell\t0\n\n";
  }
  rnnkit_test::write_file(dir, "names.txt", text);
  const auto cfg = rnnkit_test::write_file(
      dir, "b.toml",
      "[data]\ntrain = \"names.txt\"\nvalid = \"names.txt\"\nscheme = \"io\"\nrename_tags = "
      "[\"1=I-NAME\", \"0=O\"]\n"
      "[model]\nword_embedding_size = 8\nchar_features = \"none\"\ncasing_size = 2\nhidden_size = "
      "8\ndropout = 0.0\n"
      "[train]\nepochs = 4\nbatch_size = 8\nlearning_rate = 0.02\nseed = 1\n");
  train::ConfigReader config(cfg);
  const auto r = ner::train(config, rnnkit_test::quiet_run(dir + "/run"));
  EXPECT_GE(r.best.get("val_f1"), 0.95);
  auto m = ner::load_model(dir + "/run/best.pt", torch::kCPU);
  const auto tags =
      m.tag({{"Harry", "Potter", "and", "Hermione", "Granger", "invented", "a", "new", "spell"}},
            torch::kCPU);
  std::vector<std::string> file_tags;
  for (const auto& t : tags[0]) file_tags.push_back(m.config.unrename(t));
  EXPECT_EQ(file_tags, (std::vector<std::string>{"1", "1", "0", "1", "1", "0", "0", "0", "0"}));
}

TEST(NerApp, ResumesAnInterruptedRun) {
  const auto dir = rnnkit_test::temp_dir("ner_resume");
  const auto cfg = toy_config(dir);
  train::ConfigReader c1(cfg);
  const auto full = ner::train(c1, rnnkit_test::quiet_run(dir + "/full"));
  auto part = rnnkit_test::quiet_run(dir + "/part");
  part.max_steps = 20;  // stops inside epoch 3 (8 batches per epoch)
  train::ConfigReader c2(cfg);
  ner::train(c2, part);
  part.max_steps = 0;
  part.resume = true;
  train::ConfigReader c3(cfg);
  const auto resumed = ner::train(c3, part);
  EXPECT_NEAR(resumed.last.get("val_f1"), full.last.get("val_f1"), 1e-9);
  EXPECT_EQ(resumed.steps, full.steps);
}

TEST(NerApp, BadInputNamesFileLineAndExpectation) {
  const auto dir = rnnkit_test::temp_dir("ner_bad");
  const auto cfg = toy_config(dir, "tag_scheme = \"iobes\"\n");
  rnnkit_test::write_file(dir, "dev.conll", "Anna I-PER\nSmith X-PER\n");
  train::ConfigReader config(cfg);
  rnnkit_test::expect_message<data::DataError>(
      [&] { ner::train(config, rnnkit_test::quiet_run(dir + "/run")); },
      {"dev.conll:2", "X-PER", "iob1"});
  const auto bad =
      rnnkit_test::write_file(dir, "bad.toml",
                              "[data]\ntrain = \"train.conll\"\nvalid = \"dev.conll\"\n"
                              "[model]\ndecoder = \"hmm\"\n");
  train::ConfigReader c2(bad);
  rnnkit_test::expect_message<train::ConfigError>([&] { ner::NerConfig::read(c2); },
                                                  {"decoder", "hmm", "crf"});
  const auto rename =
      rnnkit_test::write_file(dir, "r.toml",
                              "[data]\ntrain = \"train.conll\"\nvalid = \"dev.conll\"\n"
                              "rename_tags = [\"1:I-NAME\"]\n");
  train::ConfigReader c3(rename);
  rnnkit_test::expect_message<train::ConfigError>(
      [&] { ner::NerConfig::read(c3); }, {"rename_tags", "FILE_TAG=ENTITY_TAG", "1:I-NAME"});
}

TEST(NerApp, PretrainedVectorsWithLowercaseFallback) {
  const auto dir = rnnkit_test::temp_dir("ner_pretrained");
  // Case-sensitive word keys: "Anna" finds the vector of "anna" (the lowercase fallback),
  // "Smith" its own; other words keep random vectors.
  rnnkit_test::write_file(
      dir, "vec.txt",
      "anna 1 2 3 4 5 6 7 8\nSmith -1 -2 -3 -4 -5 -6 -7 -8\nsmith 9 9 9 9 9 9 9 9\n");
  const auto cfg = toy_config(dir, "pretrained = \"vec.txt\"\n");
  train::ConfigReader config(cfg, {"data.lowercase=false", "train.optimizer=\"sgd\"",
                                   "train.learning_rate=1e-12", "train.epochs=1"});
  ner::train(config, rnnkit_test::quiet_run(dir + "/run"));
  auto m = ner::load_model(dir + "/run/last.pt", torch::kCPU);
  const auto row = [&](const std::string& w) {
    return m.model->words->weight[m.lexicon.words.id(w)];
  };
  ASSERT_TRUE(m.lexicon.words.contains("Anna"));
  EXPECT_LE(max_abs_diff(row("Anna"), torch::arange(1, 9, torch::kFloat)), 1e-6);
  EXPECT_LE(max_abs_diff(row("Smith"), -torch::arange(1, 9, torch::kFloat)), 1e-6);
  EXPECT_GT(row("Boris").abs().sum().item<double>(), 0.0);  // random, not zero
  // Lookup falls back to the lowercased key for a word written differently.
  EXPECT_EQ(m.lexicon.word_id("ANNA"), data::Vocab::kUnk);  // no "ANNA" and no "anna" key
  EXPECT_EQ(m.lexicon.word_id("we"), m.lexicon.words.id("we"));
  EXPECT_EQ(m.lexicon.word_id("We"), m.lexicon.words.id("we"));
}

TEST(NerCuda, CrfAndTaggerOnGpuAgreeWithCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(12);
  const torch::Device gpu(torch::kCUDA);
  CRF crf = constrained_crf();
  auto crf_gpu = std::dynamic_pointer_cast<CRFImpl>(crf->clone(gpu));
  const Tensor e = torch::randn({3, 6, 5}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({6, 2, 4}, torch::kLong);
  EXPECT_LE(max_abs_diff(crf->log_partition(e, lengths),
                         crf_gpu->log_partition(e.to(gpu), lengths).cpu()),
            1e-10);
  EXPECT_EQ(crf->decode(e, lengths), crf_gpu->decode(e.to(gpu), lengths));

  ner::Tagger m(ner::TaggerOptions(12, 12, 5, RNNOptions("lstm", 0, 3))
                    .word_embedding_size(4)
                    .char_embedding_size(3)
                    .char_hidden_size(3)
                    .casing_size(2));
  m->to(torch::kDouble);
  m->eval();
  auto g = std::dynamic_pointer_cast<ner::TaggerImpl>(m->clone(gpu));
  const auto batch = tiny_batch();
  EXPECT_LE(max_abs_diff(m->forward(batch), g->forward(batch.to_device(gpu)).cpu()), 1e-10);
  EXPECT_EQ(m->decode(batch), g->decode(batch.to_device(gpu)));
  EXPECT_NEAR(m->loss(batch).item<double>(), g->loss(batch.to_device(gpu)).item<double>(), 1e-10);
}

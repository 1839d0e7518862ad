// apps/sentiment: metrics, sequence summaries, pretrained vectors, and train / cv / eval /
// predict end to end on tiny data.
#include <filesystem>
#include <fstream>

#include <rnnkit/data/embeddings.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/config.h>
#include "sentiment/sentiment.h"
#include "test_train_util.h"

using namespace rnnkit;
using rnnkit_test::max_abs_diff;
namespace fs = std::filesystem;

namespace {

std::string dir_for(const std::string& name) { return rnnkit_test::temp_dir("sent_" + name); }

std::string put(const std::string& dir, const std::string& name, const std::string& text) {
  return rnnkit_test::write_file(dir, name, text);
}

/// Two classes that a bag of words separates: "good ..." and "bad ..." sentences.
std::string tiny_config(const std::string& dir, const std::string& extra = "") {
  std::string pos, neg;
  const char* fillers[] = {"movie", "plot", "acting", "film", "story", "cast"};
  for (int i = 0; i < 60; ++i) {
    pos += std::string("a good ") + fillers[i % 6] + " and " + fillers[(i + 1) % 6] + "\n";
    neg += std::string("a bad ") + fillers[i % 6] + " and " + fillers[(i + 2) % 6] + "\n";
  }
  put(dir, "x.pos", pos);
  put(dir, "x.neg", neg);
  return put(dir, "s.toml",
             "[data]\nformat = \"class_files\"\nclasses = [\"pos\", \"neg\"]\n"
             "train = [\"x.pos\", \"x.neg\"]\nfolds = 3\n"
             "[model]\nembedding_size = 8\nhidden_size = 8\ndropout = 0.0\n"
             "[train]\nepochs = 6\nbatch_size = 8\nlearning_rate = 0.02\nseed = 2\n" +
                 extra);
}

}  // namespace

TEST(Sentiment, ClassificationReportWorkedExample) {
  // gold:      0 0 0 1 1 2
  // predicted: 0 0 1 1 2 2
  const auto r = train::classification_report({0, 0, 0, 1, 1, 2}, {0, 0, 1, 1, 2, 2}, 3);
  EXPECT_DOUBLE_EQ(r.accuracy, 4.0 / 6);
  // class 0: P 1, R 2/3 -> F1 0.8; class 1: P 1/2, R 1/2 -> 0.5; class 2: P 1/2, R 1 -> 2/3
  EXPECT_NEAR(r.f1[0], 0.8, 1e-12);
  EXPECT_NEAR(r.f1[1], 0.5, 1e-12);
  EXPECT_NEAR(r.f1[2], 2.0 / 3, 1e-12);
  EXPECT_NEAR(r.macro_f1, (0.8 + 0.5 + 2.0 / 3) / 3, 1e-12);
  EXPECT_EQ(r.confusion, (std::vector<std::vector<int64_t>>{{2, 1, 0}, {0, 1, 1}, {0, 0, 1}}));
  // scikit-learn's classification_report(gold, predicted, target_names=[...], digits=4), character
  // for character (the expected text is what sklearn/metrics/_classification.py's formatting
  // code gives for these numbers); the confusion matrix follows it.
  EXPECT_NEAR(r.precision[2], 0.5, 1e-12);
  EXPECT_NEAR(r.recall[0], 2.0 / 3, 1e-12);
  EXPECT_EQ(r.support, (std::vector<int64_t>{3, 2, 1}));
  EXPECT_NEAR(r.macro_precision, (1 + 0.5 + 0.5) / 3, 1e-12);
  EXPECT_NEAR(r.weighted_f1, (3 * 0.8 + 2 * 0.5 + 1 * 2.0 / 3) / 6, 1e-12);
  const std::string sklearn =
      "              precision    recall  f1-score   support\n"
      "\n"
      "         neg     1.0000    0.6667    0.8000         3\n"
      "         neu     0.5000    0.5000    0.5000         2\n"
      "         pos     0.5000    1.0000    0.6667         1\n"
      "\n"
      "    accuracy                         0.6667         6\n"
      "   macro avg     0.6667    0.7222    0.6556         6\n"
      "weighted avg     0.7500    0.6667    0.6778         6\n";
  const auto text = train::format_report(r, {"neg", "neu", "pos"});
  EXPECT_EQ(text.substr(0, sklearn.size()), sklearn) << text;
  EXPECT_NE(text.find("confusion matrix"), std::string::npos);
  const auto j = train::to_json(r, {"neg", "neu", "pos"});
  EXPECT_EQ(j["classes"]["neu"]["support"], 2);
  EXPECT_NEAR(j["weighted avg"]["f1"].get<double>(), r.weighted_f1, 1e-15);
  EXPECT_EQ(j["macro avg"]["absent_classes"], train::Json::array()) << "every class has examples";
}

TEST(Sentiment, SummariesUseRealStepsOnly) {
  torch::manual_seed(3);
  for (const auto pooling :
       {sentiment::Pooling::kLast, sentiment::Pooling::kMean, sentiment::Pooling::kMax}) {
    auto m =
        sentiment::Classifier(sentiment::ClassifierOptions(
                                  20, 3, RNNOptions("gru", 0, 5).num_layers(2).bidirectional(true))
                                  .embedding_size(4)
                                  .pooling(pooling));
    m->eval();
    const auto tokens = torch::tensor({5, 6, 7, 8, 9, 10, 0, 0}, torch::kLong).view({2, 4});
    const auto lengths = torch::tensor({4, 2}, torch::kLong);
    const auto batch = m->forward(tokens, lengths);
    // The second sequence alone, without padding, gives the same logits.
    const auto alone =
        m->forward(tokens.narrow(0, 1, 1).narrow(1, 0, 2), torch::tensor({2}, torch::kLong));
    EXPECT_LE(max_abs_diff(batch.narrow(0, 1, 1), alone), 1e-6);
  }
  // "last" for two directions: the forward state at the last real token, the backward state
  // after reading the first token.
  auto m = sentiment::Classifier(
      sentiment::ClassifierOptions(20, 2, RNNOptions("lstm", 0, 3).bidirectional(true))
          .embedding_size(4));
  m->eval();
  const auto tokens = torch::tensor({5, 6, 7, 0}, torch::kLong).view({1, 4});
  const auto lengths = torch::tensor({3}, torch::kLong);
  const auto out = m->rnn->forward(m->embedding->forward(tokens), lengths);
  const auto s = m->summarize(out, lengths);
  EXPECT_LE(max_abs_diff(s.narrow(1, 0, 3), out.output[0][2].narrow(0, 0, 3).unsqueeze(0)), 1e-7);
  EXPECT_LE(max_abs_diff(s.narrow(1, 3, 3), out.output[0][0].narrow(0, 3, 3).unsqueeze(0)), 1e-7);
}

TEST(Sentiment, PretrainedVectorsWithLowercasedFallback) {
  const auto dir = dir_for("vectors");
  const auto glove = put(dir, "v.txt", "the 1 2 3\nGood 4 5 6\nbad 7 8 9\n");
  const auto w2v = put(dir, "w.txt", "2 3\nthe 1 2 3\nbad 7 8 9\n");
  const auto vocab = data::Vocab::build(std::vector<std::string>{"the", "good", "Bad", "zzz"});
  for (const auto& path : {glove, w2v}) {
    const auto v = data::read_word_vectors(path);
    EXPECT_EQ(v.dim, 3);
    auto weight = torch::zeros({vocab.size(), 3});
    const auto found = data::init_embeddings(weight, vocab, v);
    EXPECT_EQ(found, 2);  // "the", and "Bad" through "bad"; "good" has no entry of that case
    EXPECT_EQ(weight[vocab.id("the")][2].item<float>(), 3.0f);
    EXPECT_EQ(weight[vocab.id("Bad")][0].item<float>(), 7.0f);
    EXPECT_EQ(weight[vocab.id("zzz")].abs().sum().item<float>(), 0.0f);
  }
  const auto bad = put(dir, "b.txt", "the 1 2 3\nbad 7 8\n");
  rnnkit_test::expect_message<data::DataError>(
      [&] { data::read_word_vectors(bad); },
      {"b.txt:2: expected a vector of 3 numbers for 'bad', got 2"});
}

TEST(Sentiment, TrainEvalPredictAndCrossValidate) {
  const auto dir = dir_for("e2e");
  train::ConfigReader c(tiny_config(dir));
  const auto r = sentiment::train(c, rnnkit_test::quiet_run(dir + "/run"));
  EXPECT_GE(r.best.get("val_accuracy"), 0.9);
  auto m = sentiment::load_model(dir + "/run/best.pt", torch::kCPU);
  EXPECT_EQ(m.labels, (std::vector<std::string>{"neg", "pos"}));
  const auto p = m.probabilities({"a good story", "a bad film", ""}, torch::kCPU);
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_GT(p[0][1].item<double>(), 0.5);
  EXPECT_GT(p[1][0].item<double>(), 0.5);
  EXPECT_NEAR(p.sum(1)[2].item<double>(), 1.0, 1e-6);
  const auto report = sentiment::evaluate(m, {dir + "/x.pos", dir + "/x.neg"}, torch::kCPU);
  EXPECT_GE(report.accuracy, 0.9);

  // Selection on a tenth of each fold's training part (the default valid_fraction), then the
  // fixed-epoch variant that scores the last epoch.
  for (const char* fraction : {"0.1", "0"}) {
    train::ConfigReader cvc(tiny_config(dir, "early_stopping = 2\n"),
                            {std::string("data.valid_fraction=") + fraction});
    const auto out = dir + "/cv" + fraction;
    const auto cv = sentiment::cross_validate(cvc, rnnkit_test::quiet_run(out));
    EXPECT_FALSE(cv.interrupted);
    ASSERT_EQ(cv.accuracy.size(), 3u);
    for (int k = 1; k <= 3; ++k)
      EXPECT_TRUE(fs::exists(out + "/fold" + std::to_string(k) + "/last.pt"));
    EXPECT_GE(cv.mean_accuracy(), 0.8);
    // Resumed after it finished: the same folds, the same scores, nothing trained again (an
    // early-stopped fold stays stopped).
    const auto epochs_logged = [&] {
      std::ifstream csv(out + "/fold1/metrics.csv");
      int n = 0;
      for (std::string line; std::getline(csv, line);) ++n;
      return n;
    };
    const int before = epochs_logged();
    if (std::string(fraction) == "0.1") {
      EXPECT_LT(before, 7) << "fold 1 should have stopped early";
    }
    auto again = rnnkit_test::quiet_run(out);
    again.resume = true;
    train::ConfigReader cvr(tiny_config(dir, "early_stopping = 2\n"),
                            {std::string("data.valid_fraction=") + fraction});
    EXPECT_EQ(sentiment::cross_validate(cvr, again).accuracy, cv.accuracy);
    EXPECT_EQ(epochs_logged(), before);
  }
}

// Mixed precision: the fixed-seed tiny run in bf16 ends near the fp32 run (test_apps.cpp's
// Precision test explains the tolerance).
TEST(Sentiment, Bf16RunEndsNearTheFp32Run) {
  const auto dir = dir_for("bf16");
  const auto r = rnnkit_test::fp32_and_bf16(sentiment::train, tiny_config(dir), dir);
  EXPECT_NEAR(r.loss16, r.loss32, 0.05 * r.loss32 + 0.01) << "train loss";
  EXPECT_NE(r.loss16, r.loss32) << "the bf16 run equals the fp32 run: nothing ran in bf16";
  EXPECT_GE(r.bf16.best.get("val_accuracy"), 0.9);
}

TEST(Sentiment, EnsembleAveragesProbabilities) {
  const auto dir = dir_for("ensemble");
  for (const char* seed : {"2", "3"}) {
    train::ConfigReader c(tiny_config(dir), {std::string("train.seed=") + seed, "train.epochs=2"});
    sentiment::train(c, rnnkit_test::quiet_run(dir + "/s" + seed));
  }
  auto models = sentiment::load_models({dir + "/s2/last.pt", dir + "/s3/last.pt"}, torch::kCPU);
  const std::vector<std::string> texts = {"a good plot", "a bad cast", "and"};
  const auto mean = sentiment::ensemble_probabilities(models, texts, torch::kCPU);
  const auto a = models[0].probabilities(texts, torch::kCPU),
             b = models[1].probabilities(texts, torch::kCPU);
  EXPECT_GT(max_abs_diff(a, b), 1e-4) << "two seeds, two different models";
  EXPECT_LE(max_abs_diff(mean, (a + b) / 2), 1e-7);
  const auto one = sentiment::evaluate(models[0], {dir + "/x.pos", dir + "/x.neg"}, torch::kCPU);
  const auto both = sentiment::evaluate(models, {dir + "/x.pos", dir + "/x.neg"}, torch::kCPU);
  int64_t n = 0;
  for (const auto& row : both.confusion)
    for (auto x : row) n += x;
  EXPECT_EQ(n, 120);  // every text of both files, once
  EXPECT_GE(both.accuracy, one.accuracy - 0.1);

  train::ConfigReader other(tiny_config(dir), {"data.classes=[\"yes\", \"no\"]", "train.epochs=1"});
  sentiment::train(other, rnnkit_test::quiet_run(dir + "/other"));
  rnnkit_test::expect_message<train::CheckpointError>(
      [&] {
        sentiment::load_models({dir + "/s2/last.pt", dir + "/other/last.pt"}, torch::kCPU);
      },
      {"other/last.pt: labels no,yes, but", "an ensemble needs the same labels"});
}

TEST(Sentiment, BiLMLossAgainstStepByStep) {
  // Each text alone, each prediction written out: the padded batch must give the same sum.
  torch::manual_seed(4);
  for (const bool bidirectional : {true, false}) {
    auto m = sentiment::Classifier(
        sentiment::ClassifierOptions(12, 2, RNNOptions("lstm", 0, 3).bidirectional(bidirectional))
            .embedding_size(4));
    sentiment::BiLM lm(m, 12);
    lm->to(torch::kFloat64);
    lm->eval();
    const std::vector<std::vector<int64_t>> texts = {{5, 6, 7, 8}, {9, 10}, {11}};
    const auto tokens =
        torch::tensor({5, 6, 7, 8, 9, 10, 0, 0, 11, 0, 0, 0}, torch::kLong).view({3, 4});
    const auto lengths = torch::tensor({4, 2, 1}, torch::kLong);
    const auto got = lm->loss(tokens, lengths);

    double want = 0;
    int64_t count = 0;
    const int64_t H = 3;
    for (const auto& x : texts) {
      const auto n = static_cast<int64_t>(x.size());
      const auto a =
          lm->rnn
              ->forward(lm->embedding->forward(torch::tensor(x, torch::kLong).view({1, n})),
                        torch::tensor({n}, torch::kLong))
              .output[0];                    // [n, K*H]
      for (int64_t t = 0; t + 1 < n; ++t) {  // a→<t> predicts x<t+1>
        const auto logp = torch::log_softmax(lm->forward_head->forward(a[t].narrow(0, 0, H)), 0);
        want -= logp[x[t + 1]].item<double>();
        ++count;
      }
      for (int64_t t = 1; bidirectional && t < n; ++t) {  // a←<t> predicts x<t-1>
        const auto logp = torch::log_softmax(lm->backward_head->forward(a[t].narrow(0, H, H)), 0);
        want -= logp[x[t - 1]].item<double>();
        ++count;
      }
    }
    EXPECT_EQ(got.count, count);
    EXPECT_EQ(got.count, bidirectional ? 8 : 4);
    EXPECT_NEAR(got.sum.item<double>(), want, 1e-10);
  }
  auto deep = sentiment::Classifier(sentiment::ClassifierOptions(
      12, 2, RNNOptions("gru", 0, 128).num_layers(2).bidirectional(true)));
  rnnkit_test::expect_message<c10::Error>(
      [&] { sentiment::BiLM(deep, 12); },
      {"would see the word it predicts", "got 2 bidirectional layers"});
}

TEST(Sentiment, PretrainThenClassifyAndResumeExactly) {
  const auto dir = dir_for("pretrain");
  const std::string extra = "[pretrain]\nepochs = 2\n";
  train::ConfigReader c(tiny_config(dir, extra));
  const auto full = sentiment::train(c, rnnkit_test::quiet_run(dir + "/full"));
  EXPECT_GE(full.best.get("val_accuracy"), 0.9);
  std::ifstream csv(dir + "/full/pretrain/metrics.csv");
  std::string line;
  int lines = 0;
  while (std::getline(csv, line)) ++lines;
  EXPECT_EQ(lines, 3) << "a header and two pretraining epochs";

  // Stopped inside pretraining, then resumed: the same weights as the uninterrupted run.
  auto cut = rnnkit_test::quiet_run(dir + "/cut");
  cut.max_steps = 5;
  train::ConfigReader c2(tiny_config(dir, extra));
  EXPECT_TRUE(sentiment::train(c2, cut).interrupted);
  EXPECT_FALSE(fs::exists(dir + "/cut/last.pt")) << "the classifier has not started";
  cut.max_steps = 0;
  cut.resume = true;
  train::ConfigReader c3(tiny_config(dir, extra));
  const auto resumed = sentiment::train(c3, cut);
  EXPECT_DOUBLE_EQ(resumed.last.get("val_accuracy"), full.last.get("val_accuracy"));
  auto a = sentiment::load_model(dir + "/full/last.pt", torch::kCPU);
  auto b = sentiment::load_model(dir + "/cut/last.pt", torch::kCPU);
  const auto pa = a.model->parameters(), pb = b.model->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(max_abs_diff(pa[i], pb[i]), 0.0) << i;

  train::ConfigReader deep(tiny_config(dir, extra), {"model.num_layers=2"});
  rnnkit_test::expect_message<train::ConfigError>(
      [&] { sentiment::SentimentConfig::read(deep); },
      {"key pretrain.epochs", "would see the word it predicts"});
  train::ConfigReader stop(tiny_config(dir, extra + "early_stopping = 2\n"));
  rnnkit_test::expect_message<train::ConfigError>([&] { sentiment::SentimentConfig::read(stop); },
                                                  {"fixed number of epochs"});
}

TEST(Sentiment, ConfigErrors) {
  const auto dir = dir_for("cfg");
  train::ConfigReader c(tiny_config(dir), {"data.classes=[\"pos\"]"});
  rnnkit_test::expect_message<train::ConfigError>(
      [&] { sentiment::SentimentConfig::read(c); },
      {"one class per train file (2 files, 1 classes)"});
  train::ConfigReader p(tiny_config(dir), {"model.pooling=avg"});
  EXPECT_THROW(sentiment::SentimentConfig::read(p), train::ConfigError);
}

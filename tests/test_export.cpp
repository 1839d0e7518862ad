// ONNX export checked by a real runtime: each model is exported, accepted by python3-onnx's
// checker, run through ONNX Runtime (the npm package onnxruntime-node, through
// tests/onnx/ort_run.js) and compared with rnnkit's own forward pass: float32 outputs within
// 1e-4, decoded tags, labels and greedy samples identical.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <rnnkit/export/onnx.h>
#include <rnnkit/train/json.h>

#include "lm/lm.h"
#include "ner/ner.h"
#include "sentiment/sentiment.h"
#include "test_train_util.h"

using namespace rnnkit;
namespace ox = rnnkit::onnx_export;
using train::Json;

namespace {

constexpr double kTolerance = 1e-4;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

const std::string kNodePath = env("NODE_PATH").empty() ? RNNKIT_ORT_NODE_PATH : env("NODE_PATH");

/// Whether ONNX Runtime is installed where the build expects it; without it the tests say so
/// and skip, unless RNNKIT_REQUIRE_ORT=1 (the README's test command) makes that a failure.
bool have_runtime() {
  const bool there = std::filesystem::exists(kNodePath + "/onnxruntime-node");
  if (!there && env("RNNKIT_REQUIRE_ORT") == "1") {
    ADD_FAILURE() << "onnxruntime-node is not in " << kNodePath
                  << ": scripts/setup.sh onnxruntime BUILD_DIR installs it";
  }
  return there;
}
#define REQUIRE_RUNTIME()                                    \
  if (!have_runtime())                                       \
  GTEST_SKIP() << "onnxruntime-node is not in " << kNodePath \
               << " (scripts/setup.sh onnxruntime BUILD_DIR installs it)"

Json tensor_json(const torch::Tensor& t_) {
  const auto t = t_.detach().cpu().contiguous();
  Json j;
  j["dims"] = t.sizes().vec();
  if (t.scalar_type() == torch::kLong) {
    j["type"] = "int64";
    j["data"] = std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  } else {
    const auto f = t.to(torch::kFloat);
    j["type"] = "float32";
    j["data"] = std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  }
  return j;
}

torch::Tensor from_json(const Json& j) {
  const auto dims = j["dims"].get<std::vector<int64_t>>();
  std::vector<double> data;
  for (const auto& v : j["data"]) {  // ort_run.js writes infinities as "Infinity", "-Infinity"
    data.push_back(v.is_string() ? std::strtod(v.get<std::string>().c_str(), nullptr)
                                 : v.get<double>());
  }
  return torch::tensor(data, torch::kDouble).view(dims).to(torch::kFloat);
}

/// ONNX Runtime's answer to `request` (tests/onnx/ort_run.js) for the model at `model`.
Json run_ort(const std::string& model, const Json& request) {
  const auto in = model + ".request.json", out = model + ".result.json";
  std::ofstream(in) << request.dump();
  std::filesystem::remove(out);
  const std::string cmd = "NODE_PATH='" + kNodePath + "' node " RNNKIT_ORT_RUN " '" + model +
                          "' '" + in + "' '" + out + "' > '" + model + ".log' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream log(model + ".log");
  std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_EQ(rc, 0) << cmd << ": " << text;
  std::ifstream result(out);
  if (!result) return Json::object();
  return Json::parse(result);
}

/// python3-onnx's checker (full_check: shapes inferred too) over every file in `paths`.
void expect_checker_accepts(const std::vector<std::string>& paths) {
  std::string cmd = std::string(RNNKIT_SYSTEM_PYTHON) +
                    " -c 'import onnx, sys\nfor p in sys.argv[1:]: "
                    "onnx.checker.check_model(onnx.load(p), full_check=True)'";
  for (const auto& p : paths) cmd += " '" + p + "'";
  EXPECT_EQ(std::system((cmd + " 2>&1").c_str()), 0) << "onnx.checker refused one of the files";
}

/// A bare recurrent stack as a model: x [T, B, D], lengths, h0 (and c0) -> output, h_n (c_n).
void export_rnn(RNNImpl& rnn, const std::string& path) {
  ox::Graph g("rnn", "a recurrent stack");
  const int64_t L = rnn.options.num_layers(), K = rnn.num_directions(),
                H = rnn.options.hidden_size(), D = rnn.options.input_size();
  const bool memory = rnn.cell(0, 0).has_memory_cell();
  g.input("x", ox::Type::kFloat, {"steps", "batch", D}, "");
  g.input("lengths", ox::Type::kInt64, {"batch"}, "");
  g.input("h0", ox::Type::kFloat, {L * K, "batch", H}, "");
  if (memory) g.input("c0", ox::Type::kFloat, {L * K, "batch", H}, "");
  const auto r = ox::add_rnn(g, rnn, "x", "lengths", "h0", memory ? "c0" : "");
  g.output(r.output, "output", ox::Type::kFloat, {"steps", "batch", K * H}, "");
  g.output(r.h_n, "h_n", ox::Type::kFloat, {L * K, "batch", H}, "");
  if (memory) g.output(r.c_n, "c_n", ox::Type::kFloat, {L * K, "batch", H}, "");
  ox::save(g, Json{{"app", "test"}}, path);
}

}  // namespace

TEST(OnnxExport, EveryCellBothDirectionsOneAndTwoLayersWithPaddingMatchOnnxRuntime) {
  REQUIRE_RUNTIME();
  const auto dir = rnnkit_test::temp_dir("onnx_cells");
  torch::manual_seed(7);
  const int64_t T = 9, B = 7, D = 5, H = 6;
  const auto lengths = torch::tensor({9, 1, 4, 9, 6, 2, 7}, torch::kLong);  // padding in most rows
  std::vector<std::string> files;
  for (const std::string cell :
       {"lstm", "lstm_peephole", "gru", "gru_reset_after", "gru_simple", "rnn", "rnn_relu"}) {
    for (const bool bi : {false, true}) {
      for (const int64_t layers : {1, 2}) {
        SCOPED_TRACE(cell + (bi ? " bidirectional" : "") + " layers " + std::to_string(layers));
        RNN rnn(RNNOptions(cell, D, H).num_layers(layers).bidirectional(bi).init(Init::kXavier));
        rnn->eval();
        const int64_t K = bi ? 2 : 1;
        const auto x = torch::randn({T, B, D});
        const auto h0 = 0.5 * torch::randn({layers * K, B, H});
        const auto c0 = 0.5 * torch::randn({layers * K, B, H});
        const bool memory = rnn->cell(0, 0).has_memory_cell();
        torch::NoGradGuard no_grad;
        const auto ours =
            rnn->forward(x, lengths, unstack_states(h0, memory ? c0 : torch::Tensor()));
        const auto path = dir + "/" + cell + (bi ? "_bi" : "") + std::to_string(layers) + ".onnx";
        export_rnn(*rnn, path);
        files.push_back(path);
        Json inputs{
            {"x", tensor_json(x)}, {"lengths", tensor_json(lengths)}, {"h0", tensor_json(h0)}};
        if (memory) inputs["c0"] = tensor_json(c0);
        const auto r = run_ort(path, Json{{"runs", {{{"inputs", inputs}}}}});
        ASSERT_TRUE(r.contains("runs")) << path;
        const auto& o = r["runs"][0];
        EXPECT_LE(rnnkit_test::max_abs_diff(from_json(o["output"]), ours.output), kTolerance);
        EXPECT_LE(rnnkit_test::max_abs_diff(from_json(o["h_n"]), ours.a_n()), kTolerance);
        if (memory) {
          EXPECT_LE(rnnkit_test::max_abs_diff(from_json(o["c_n"]), ours.c_n()), kTolerance);
        }
        // Past each length the output is zero, in both.
        EXPECT_EQ(from_json(o["output"]).select(1, 1).slice(0, 1).abs().max().item<float>(), 0.f);
      }
    }
  }
  expect_checker_accepts(files);
}

namespace {

/// Two classes that a bag of words separates (as tests/test_sentiment.cpp's tiny config).
std::string sentiment_config(const std::string& dir) {
  std::string pos, neg;
  const char* fillers[] = {"movie", "plot", "acting", "film", "story", "cast"};
  for (int i = 0; i < 60; ++i) {
    pos += std::string("a good ") + fillers[i % 6] + " and " + fillers[(i + 1) % 6] + "\n";
    neg += std::string("a bad ") + fillers[i % 6] + " and " + fillers[(i + 2) % 6] + "\n";
  }
  rnnkit_test::write_file(dir, "x.pos", pos);
  rnnkit_test::write_file(dir, "x.neg", neg);
  return rnnkit_test::write_file(
      dir, "s.toml",
      "[data]\nformat = \"class_files\"\nclasses = [\"pos\", \"neg\"]\n"
      "train = [\"x.pos\", \"x.neg\"]\n"
      "[model]\nembedding_size = 8\nhidden_size = 8\ndropout = 0.0\n"
      "[train]\nepochs = 4\nbatch_size = 8\nlearning_rate = 0.02\nseed = 2\n");
}

/// `n` texts of 1 to `longest` words drawn from `words` (and an unknown one now and then).
std::vector<std::vector<std::string>> random_sentences(const std::vector<std::string>& words, int n,
                                                       int longest, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < n; ++i) {
    const int len = 1 + static_cast<int>(rng() % static_cast<unsigned>(longest));
    std::vector<std::string> s;
    for (int t = 0; t < len; ++t) {
      s.push_back(rng() % 10 == 0 ? "Zyxwv" + std::to_string(rng() % 100)
                                  : words[rng() % words.size()]);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string join(const std::vector<std::string>& s) {
  std::string out;
  for (const auto& w : s) out += (out.empty() ? "" : " ") + w;
  return out;
}

/// ids [N] lists -> padded [N, T] and lengths [N].
std::pair<torch::Tensor, torch::Tensor> pad(const std::vector<std::vector<int64_t>>& ids) {
  int64_t T = 0;
  for (const auto& s : ids) T = std::max<int64_t>(T, static_cast<int64_t>(s.size()));
  auto x = torch::zeros({static_cast<int64_t>(ids.size()), T}, torch::kLong);
  std::vector<int64_t> len;
  for (size_t i = 0; i < ids.size(); ++i) {
    len.push_back(static_cast<int64_t>(ids[i].size()));
    x[static_cast<int64_t>(i)].slice(0, 0, len.back()) = torch::tensor(ids[i], torch::kLong);
  }
  return {x, torch::tensor(len, torch::kLong)};
}

}  // namespace

TEST(OnnxExport, SentimentClassifierMatchesOnnxRuntime) {
  REQUIRE_RUNTIME();
  const auto dir = rnnkit_test::temp_dir("onnx_sentiment");
  train::ConfigReader config(sentiment_config(dir));
  sentiment::train(config, rnnkit_test::quiet_run(dir + "/run"));
  const auto trained = sentiment::load_model(dir + "/run/best.pt", torch::kCPU);
  const auto vocab = ox::tokens_of(trained.vocab);
  const std::vector<std::string> words(vocab.begin() + 4, vocab.end());
  std::vector<std::string> texts;
  for (const auto& s : random_sentences(words, 240, 30, 1)) texts.push_back(join(s));

  struct Variant {
    std::string name, cell, pooling;
    bool bidirectional;
    int64_t layers;
  };
  const std::vector<Variant> variants{{"trained", "", "", true, 1},
                                      {"gru_mean", "gru", "mean", true, 2},
                                      {"simple_max", "gru_simple", "max", false, 2},
                                      {"relu_last", "rnn_relu", "last", false, 1},
                                      {"peephole_last", "lstm_peephole", "last", true, 2}};
  std::vector<std::string> files;
  torch::manual_seed(3);
  for (const auto& v : variants) {
    SCOPED_TRACE(v.name);
    auto m = trained;
    if (!v.cell.empty()) {  // the same vocabulary and labels around a fresh model
      m.config.rnn = RNNOptions(v.cell, 0, 8).bidirectional(v.bidirectional).num_layers(v.layers);
      m.config.pooling = v.pooling;
      m.model = sentiment::Classifier(
          m.config.model_options(m.vocab.size(), static_cast<int64_t>(m.labels.size())));
      m.model->eval();
    }
    const auto path = dir + "/" + v.name + ".onnx";
    sentiment::export_onnx(m, path);
    files.push_back(path);
    const auto ours = m.probabilities(texts, torch::kCPU);  // [N, C]
    std::vector<std::vector<int64_t>> ids;
    for (const auto& t : texts) ids.push_back(m.vocab.encode(m.config.tokenize(t)));
    const auto [tokens, lengths] = pad(ids);
    const auto r = run_ort(
        path,
        Json{{"runs",
              {{{"inputs", {{"tokens", tensor_json(tokens)}, {"lengths", tensor_json(lengths)}}}},
               {{"inputs",
                 {{"tokens", tensor_json(tokens.slice(0, 0, 1).slice(1, 0, ids[0].size()))},
                  {"lengths", tensor_json(lengths.slice(0, 0, 1))}}}}}}});
    ASSERT_TRUE(r.contains("runs"));
    const auto theirs = from_json(r["runs"][0]["probabilities"]);
    EXPECT_LE(rnnkit_test::max_abs_diff(theirs, ours), kTolerance);
    EXPECT_TRUE(theirs.argmax(1).equal(ours.argmax(1))) << "the labels differ";
    EXPECT_LE(
        rnnkit_test::max_abs_diff(from_json(r["runs"][1]["probabilities"]), ours.slice(0, 0, 1)),
        kTolerance)
        << "batch 1";
  }
  expect_checker_accepts(files);
  // The JSON beside the model says how to prepare input.
  std::ifstream side(dir + "/trained.json");
  const auto meta = Json::parse(side);
  EXPECT_EQ(meta["app"], "sentiment");
  EXPECT_EQ(meta["labels"], Json(trained.labels));
  EXPECT_EQ(meta["vocab"].size(), static_cast<size_t>(trained.vocab.size()));
  EXPECT_EQ(meta["tokenizer"]["lowercase"], trained.config.lowercase);
}

TEST(OnnxExport, NerTaggerMatchesOnnxRuntime) {
  REQUIRE_RUNTIME();
  const auto dir = rnnkit_test::temp_dir("onnx_ner");
  rnnkit_test::write_file(dir, "train.conll", rnnkit_test::toy_conll(60, 0));
  rnnkit_test::write_file(dir, "dev.conll", rnnkit_test::toy_conll(12, 3));
  train::ConfigReader config(rnnkit_test::write_file(
      dir, "ner.toml",
      "[data]\ntrain = \"train.conll\"\nvalid = \"dev.conll\"\n"
      "[model]\nword_embedding_size = 8\nchar_embedding_size = 4\nchar_hidden_size = 4\n"
      "casing_size = 2\nhidden_size = 8\ndropout = 0.0\n"
      "[train]\nepochs = 4\nbatch_size = 8\nlearning_rate = 0.02\nseed = 3\n"));
  ner::train(config, rnnkit_test::quiet_run(dir + "/run"));
  const auto trained = ner::load_model(dir + "/run/best.pt", torch::kCPU);
  std::vector<std::string> words = ox::tokens_of(trained.lexicon.words);
  words.erase(words.begin(), words.begin() + 4);
  for (const char* w : {"OSLO", "anna", "1999", "3rd", "Smith-Jones", "Ærøskøbing",
                        "Supercalifragilisticexpialidocious-and-more"}) {  // past max_word_length
    words.push_back(w);
  }
  const auto sentences = random_sentences(words, 200, 20, 2);

  struct Variant {
    std::string name, cell, char_features, char_cell, decoder;
    int64_t casing, layers;
  };
  const std::vector<Variant> variants{
      {"trained", "", "", "", "", 0, 0},
      {"charrnn_softmax", "gru", "rnn", "gru_reset_after", "softmax", 2, 1},
      {"peephole_nochars", "lstm_peephole", "none", "lstm", "crf", 0, 1},
      {"charlstm_rnn2", "rnn", "rnn", "lstm", "crf", 3, 2},
      {"simple_cnn", "gru_simple", "cnn", "lstm", "softmax", 0, 1}};
  std::vector<std::string> files;
  torch::manual_seed(4);
  for (const auto& v : variants) {
    SCOPED_TRACE(v.name);
    auto m = trained;
    if (!v.cell.empty()) {
      auto o = m.model->options;
      o.rnn(RNNOptions(v.cell, 0, 8).num_layers(v.layers))
          .char_features(ner::parse_char_features(v.char_features))
          .char_cell(v.char_cell)
          .casing_size(v.casing)
          .decoder(ner::parse_decoder(v.decoder));
      m.model = ner::Tagger(o);
      if (m.model->crf) {
        const auto c = ner::constraints(m.lexicon.tags, m.lexicon.internal_scheme);
        m.model->crf->set_constraints(c.allowed, c.start, c.end);
      }
      m.model->eval();
    }
    const auto path = dir + "/" + v.name + ".onnx";
    ner::export_onnx(m, path);
    files.push_back(path);
    const auto batch = m.batch(sentences);
    torch::NoGradGuard no_grad;
    const auto ours = m.model->forward(batch);  // [B, T, K]
    const auto our_tags = m.model->decode(batch);
    const int64_t B = batch.words.size(0), T = batch.words.size(1), L = batch.chars.size(1);
    Json inputs{{"words", tensor_json(batch.words)}, {"lengths", tensor_json(batch.lengths)}};
    const auto& o = m.model->options;
    if (o.casing_size() > 0) inputs["casing"] = tensor_json(batch.casing);
    if (o.char_features() != ner::CharFeatures::kNone) {
      // The characters of every position [B, T, L] (zeros and length 0 at padding).
      inputs["chars"] = tensor_json(torch::zeros({B * T, L}, torch::kLong)
                                        .index_copy(0, batch.positions, batch.chars)
                                        .view({B, T, L}));
      inputs["char_lengths"] = tensor_json(torch::zeros({B * T}, torch::kLong)
                                               .index_copy(0, batch.positions, batch.char_lengths)
                                               .view({B, T}));
    }
    const bool crf = o.decoder() == ner::Decoder::kCRF;
    Json runs{{{"inputs", inputs}, {"decode", crf ? "viterbi" : "argmax"}}};
    if (inputs.contains("chars")) {  // wider padding of the letters changes nothing
      auto wider = inputs;
      const auto chars = torch::zeros({B * T, L}, torch::kLong)
                             .index_copy(0, batch.positions, batch.chars)
                             .view({B, T, L});
      wider["chars"] = tensor_json(torch::constant_pad_nd(chars, {0, 3}));
      runs.push_back({{"inputs", wider}});
    }
    const auto r = run_ort(path, Json{{"runs", runs}});
    ASSERT_TRUE(r.contains("runs"));
    const auto& run = r["runs"][0];
    EXPECT_LE(rnnkit_test::max_abs_diff(from_json(run["emissions"]), ours), kTolerance);
    if (runs.size() > 1) {
      EXPECT_LE(rnnkit_test::max_abs_diff(from_json(r["runs"][1]["emissions"]), ours), kTolerance)
          << "letters padded 3 wider";
    }
    EXPECT_EQ(run["tags"].get<std::vector<std::vector<int64_t>>>(), our_tags)
        << "the reference decoder's tags differ from rnnkit's";
    if (crf) {
      const auto A = from_json(run["transitions"]);
      EXPECT_TRUE(A.isinf().equal(m.model->crf->masked_transitions().isinf()));
    }
  }
  expect_checker_accepts(files);
  std::ifstream side(dir + "/trained.json");
  const auto meta = Json::parse(side);
  EXPECT_EQ(meta["tags"], Json(trained.lexicon.tags));
  EXPECT_EQ(meta["tag_scheme"], "iobes");
  EXPECT_EQ(meta["words"].size(), static_cast<size_t>(trained.lexicon.words.size()));
  EXPECT_EQ(meta["chars"].size(), static_cast<size_t>(trained.lexicon.chars.size()));
}

TEST(OnnxExport, LanguageModelMatchesOnnxRuntimeAndSamplesTheSameGreedyText) {
  REQUIRE_RUNTIME();
  const auto dir = rnnkit_test::temp_dir("onnx_lm");
  train::ConfigReader config(rnnkit_test::tiny_lm_config(dir, "", rnnkit_test::apps_tiny_lm()));
  lm::train(config, rnnkit_test::quiet_run(dir + "/run"));
  auto trained = lm::load_model(dir + "/run/best.pt", torch::kCPU);

  struct Variant {
    std::string name, cell;
    int64_t embedding, layers;
  };
  const std::vector<Variant> variants{{"trained", "", 8, 1},
                                      {"gru_onehot", "gru", 0, 1},
                                      {"peephole2", "lstm_peephole", 8, 2},
                                      {"rnn2", "rnn", 6, 2},
                                      {"simple", "gru_simple", 8, 1}};
  std::vector<std::string> files;
  torch::manual_seed(5);
  const int64_t V = trained.vocab.size(), B = 6, T = 12;
  const auto tokens = torch::randint(3, V, {B, T}, torch::kLong);
  const auto lengths = torch::tensor({12, 3, 1, 12, 7, 10}, torch::kLong);
  for (const auto& v : variants) {
    SCOPED_TRACE(v.name);
    auto m = trained;
    if (!v.cell.empty()) {
      m.config.rnn = RNNOptions(v.cell, 0, 16).num_layers(v.layers);
      m.config.embedding_size = v.embedding;
      m.model = lm::LanguageModel(m.config.model_options(V));
      m.model->eval();
    }
    const auto path = dir + "/" + v.name + ".onnx";
    lm::export_onnx(m, path);
    files.push_back(path);
    const int64_t L = m.config.rnn.num_layers();
    const bool memory = m.model->rnn->cell(0, 0).has_memory_cell();
    const auto h0 = 0.3 * torch::randn({L, B, 16}), c0 = 0.3 * torch::randn({L, B, 16});
    torch::NoGradGuard no_grad;
    const auto out =
        m.model->forward(tokens.t(), unstack_states(h0, memory ? c0 : torch::Tensor()), lengths);
    const auto ours = torch::log_softmax(out.logits, 2).transpose(0, 1);  // [B, T, V]
    Json inputs{{"tokens", tensor_json(tokens)},
                {"lengths", tensor_json(lengths)},
                {"h0", tensor_json(h0)}};
    if (memory) inputs["c0"] = tensor_json(c0);
    Json request{{"runs", {{{"inputs", inputs}}}}};
    lm::SampleOptions so;
    so.prompt = "the c";
    so.greedy = true;
    so.max_length = 40;
    if (v.name == "trained") {
      request["greedy"] = {{"prompt", lm::Sampler(m, so).prompt_ids()},
                           {"steps", so.max_length},
                           {"layers", L},
                           {"hidden", 16}};
    }
    const auto r = run_ort(path, request);
    ASSERT_TRUE(r.contains("runs"));
    const auto& run = r["runs"][0];
    // Past each length the log-probabilities are of nothing: compare the real steps.
    const auto real = torch::arange(T).unsqueeze(0) < lengths.unsqueeze(1);  // [B, T]
    const auto diff = (from_json(run["log_probs"]) - ours).abs().amax(2).masked_select(real);
    EXPECT_LE(diff.max().item<double>(), kTolerance);
    const auto states = RNNOutput{{}, out.states};
    EXPECT_LE(rnnkit_test::max_abs_diff(from_json(run["h_n"]), states.a_n()), kTolerance);
    if (memory) {
      EXPECT_LE(rnnkit_test::max_abs_diff(from_json(run["c_n"]), states.c_n()), kTolerance);
    }
    if (v.name == "trained") {
      const auto ours_text = lm::sample(m, so, torch::kCPU);
      std::string theirs_text;
      for (const auto id : r["greedy"].get<std::vector<int64_t>>())
        theirs_text += m.vocab.token(id);
      EXPECT_EQ(theirs_text, ours_text) << "greedy samples differ";
      EXPECT_EQ(ours_text.size(), 40u);
    }
  }
  expect_checker_accepts(files);
}

// rnnkit-serve in-process (apps/serve/serve.h) on a free port, queried over HTTP with
// cpp-httplib's client: the same answers as the predict paths, results that do not depend on
// batching, streamed generation, metrics, and a 4xx with a message for each kind of bad request.
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <future>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/core.h>

#include <rnnkit/train/json.h>
#include "lm/lm.h"
#include "ner/ner.h"
#include "sentiment/sentiment.h"
#include "serve/batching.h"
#include "serve/request.h"
#include "serve/serve.h"
#include "test_train_util.h"

using namespace rnnkit;
using train::Json;

namespace {

/// Sentences where capitalised words after "met" or "with" are people, after "in" places.
std::string toy_conll(int n, int seed) {
  const char* people[] = {"Anna", "Boris", "Chen", "Dara", "Emil", "Fatou", "Goran", "Hiro"};
  const char* places[] = {"Oslo", "Lima", "Accra", "Hanoi", "Quito", "Perth"};
  std::string s;
  for (int i = 0; i < n; ++i) {
    const int a = (i * 7 + seed) % 8, b = (i * 3 + seed) % 6, c = (i * 5 + 1 + seed) % 8;
    s += std::string("we O\nmet O\n") + people[a] + " B-PER\nSmith I-PER\nin O\n" + places[b] +
         " B-LOC\nwith O\n" + people[c] + " B-PER\n. O\n\n";
  }
  return s;
}

/// Three tiny models trained once for the whole suite, and a server over them.
struct Models {
  std::string dir, sentiment, ner, lm;
  Models() : dir(rnnkit_test::temp_dir("serve_" + std::to_string(::getpid()))) {
    std::string tsv;
    const char* good[] = {"great food", "lovely staff", "really good", "so tasty", "nice place"};
    const char* bad[] = {"awful food", "rude staff", "really bad", "so bland", "dirty place"};
    for (int i = 0; i < 40; ++i) {
      tsv += std::string(good[i % 5]) + " " + std::to_string(i % 3) + "\t1\n";
      tsv += std::string(bad[i % 5]) + " " + std::to_string(i % 3) + "\t0\n";
    }
    rnnkit_test::write_file(dir, "s.tsv", tsv);
    train::ConfigReader sc(rnnkit_test::write_file(
        dir, "s.toml",
        "[data]\nformat = \"tsv\"\nlabel_last = true\ntrain = \"s.tsv\"\nvalid = \"s.tsv\"\n"
        "[model]\ncell = \"gru\"\nembedding_size = 8\nhidden_size = 8\ndropout = 0.0\n"
        "[train]\nepochs = 3\nbatch_size = 8\nlearning_rate = 0.02\nseed = 1\n"));
    sentiment::train(sc, rnnkit_test::quiet_run(dir + "/s"));
    sentiment = dir + "/s/best.pt";

    rnnkit_test::write_file(dir, "train.conll", toy_conll(40, 0));
    rnnkit_test::write_file(dir, "dev.conll", toy_conll(8, 3));
    train::ConfigReader nc(rnnkit_test::write_file(
        dir, "n.toml",
        "[data]\ntrain = \"train.conll\"\nvalid = \"dev.conll\"\n"
        "[model]\nword_embedding_size = 8\nchar_embedding_size = 4\nchar_hidden_size = 4\n"
        "casing_size = 2\nhidden_size = 8\ndropout = 0.0\n"
        "[train]\nepochs = 4\nbatch_size = 8\nlearning_rate = 0.02\nseed = 3\n"));
    ner::train(nc, rnnkit_test::quiet_run(dir + "/n"));
    ner = dir + "/n/best.pt";

    std::string text;
    for (int i = 0; i < 40; ++i) text += "the cat sat on the mat " + std::to_string(i % 5) + "\n";
    rnnkit_test::write_file(dir, "lm.txt", text);
    train::ConfigReader lc(rnnkit_test::write_file(
        dir, "l.toml",
        "[data]\nlevel = \"char\"\ntrain = \"lm.txt\"\nvalid = \"lm.txt\"\nbptt = 8\n"
        "[model]\nembedding_size = 8\nhidden_size = 16\n"
        "[train]\nepochs = 1\nbatch_size = 4\nlearning_rate = 0.01\nseed = 3\n"));
    lm::train(lc, rnnkit_test::quiet_run(dir + "/l"));
    lm = dir + "/l/best.pt";
  }
};

const Models& models() {
  static const Models m;
  return m;
}

/// A server over the three models on a free port, serving until destroyed.
struct Running {
  serve::Server server;
  std::thread thread;
  explicit Running(serve::ServeOptions o = {})
      : server(
            [&] {
              o.port = 0;
              return o;
            }(),
            {{"sst", {models().sentiment}}, {"ner", {models().ner}}, {"char", {models().lm}}},
            torch::kCPU) {
    server.bind();
    thread = std::thread([this] { server.run(); });
    server.wait_until_running();
    server.load();
  }
  ~Running() {
    server.stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(60, 0);
    return c;
  }
};

Json post(httplib::Client& c, const std::string& path, const std::string& body, int want = 200,
          const httplib::Headers& headers = {}) {
  auto r = c.Post(path.c_str(), headers, body, "application/json");
  EXPECT_TRUE(r) << path << ": no answer";
  if (!r) return {};
  EXPECT_EQ(r->status, want) << path << " " << body.substr(0, 200) << ": " << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  return Json::parse(r->body);
}

/// The value of the sample `series` ("name{labels}") in a /metrics text; -1 when absent.
double metric(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

/// The error message of a request that must fail with `status`.
std::string error_of(httplib::Client& c, const std::string& path, const std::string& body,
                     int status, const httplib::Headers& headers = {}) {
  const Json j = post(c, path, body, status, headers);
  return j.contains("error") ? j["error"].get<std::string>() : "";
}

TEST(Serve, HealthAndModelCards) {
  Running s;
  auto c = s.client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  const Json cards = Json::parse(r->body)["models"];
  ASSERT_EQ(cards.size(), 3u);
  for (const auto& card : cards) {
    EXPECT_EQ(card["checkpoints"][0]["sha256"].get<std::string>().size(), 64u) << card;
    EXPECT_GT(card["parameters"].get<int64_t>(), 0) << card;
    EXPECT_GT(card["vocabulary_size"].get<int64_t>(), 0) << card;
    EXPECT_TRUE(card["checkpoints"][0]["run"].contains("epoch")) << card;
    EXPECT_TRUE(card["checkpoints"][0]["run"].contains("validation")) << card;
    EXPECT_EQ(card["checkpoints"][0]["run"].value("precision", ""), "fp32") << card;
    EXPECT_EQ(card["rnnkit_version"], RNNKIT_VERSION);
    if (card["name"] == "sst") {
      EXPECT_EQ(card["task"], "sentiment");
      EXPECT_EQ(card["model"]["cell"], "gru");
      EXPECT_EQ(card["labels"], Json({"0", "1"}));
    }
    if (card["name"] == "ner") {
      EXPECT_EQ(card["entity_types"], Json({"LOC", "PER"}));
    }
  }
  // The OpenAPI description names every route.
  auto api = c.Get("/v1/openapi.json");
  ASSERT_TRUE(api);
  const Json doc = Json::parse(api->body);
  EXPECT_EQ(doc["openapi"], "3.0.3");
  for (const char* path :
       {"/health", "/v1/models", "/metrics", "/v1/models/{name}/classify", "/v1/models/{name}/tag",
        "/v1/models/{name}/score", "/v1/models/{name}/generate"}) {
    EXPECT_TRUE(doc["paths"].contains(path)) << path;
  }
  // A second server on the same port is refused (cpp-httplib's default SO_REUSEPORT would let
  // it bind and take half of the first one's connections).
  serve::ServeOptions same;
  same.port = s.server.port();
  serve::Server second(same, {{"sst", {models().sentiment}}}, torch::kCPU);
  rnnkit_test::expect_message<std::runtime_error>(
      [&] { second.bind(); }, {"cannot listen on 127.0.0.1:" + std::to_string(same.port)});
}

TEST(Serve, ClassifyGivesPredictsAnswerAtAnyBatch) {
  Running s;
  auto c = s.client();
  std::vector<std::string> texts{"great food 1",
                                 "awful food 2",
                                 "so tasty",
                                 "rude staff",
                                 "the place was nice but the staff was rude",
                                 "lovely"};
  // What predict computes.
  auto loaded = sentiment::load_models({models().sentiment}, torch::kCPU);
  const auto probs = sentiment::ensemble_probabilities(loaded, texts, torch::kCPU);
  const Json all = post(c, "/v1/models/sst/classify", Json{{"texts", texts}}.dump());
  ASSERT_EQ(all["results"].size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const Json& r = all["results"][i];
    EXPECT_EQ(r["text"], texts[i]);
    const int64_t k = probs[static_cast<int64_t>(i)].argmax().item<int64_t>();
    EXPECT_EQ(r["label"], loaded[0].labels[static_cast<size_t>(k)]);
    for (size_t j = 0; j < loaded[0].labels.size(); ++j) {
      EXPECT_NEAR(r["probabilities"][loaded[0].labels[j]].get<double>(),
                  probs[static_cast<int64_t>(i)][static_cast<int64_t>(j)].item<double>(), 1e-6);
    }
  }
  // Alone, or in batches with 15 other requests' texts: the same labels, probabilities within
  // 1e-5 (padding changes the order of float sums, nothing else).
  std::vector<std::future<Json>> answers;
  for (int k = 0; k < 16; ++k) {
    answers.push_back(std::async(std::launch::async, [&, k] {
      auto cc = s.client();
      std::vector<std::string> mine{texts[static_cast<size_t>(k) % texts.size()],
                                    "filler text number " + std::to_string(k)};
      return post(cc, "/v1/models/sst/classify", Json{{"texts", mine}}.dump());
    }));
  }
  for (int k = 0; k < 16; ++k) {
    const Json got = answers[static_cast<size_t>(k)].get()["results"][0];
    const Json& alone = all["results"][static_cast<size_t>(k) % texts.size()];
    EXPECT_EQ(got["label"], alone["label"]);
    for (const auto& [label, p] : alone["probabilities"].items()) {
      EXPECT_NEAR(got["probabilities"][label].get<double>(), p.get<double>(), 1e-5);
    }
  }
  // Every request was counted; that one-text requests share batches is
  // ServeBatching.OneTextRequestsOfManyClientsShareABatch's to show.
  const std::string m = c.Get("/metrics")->body;
  EXPECT_NE(m.find("rnnkit_batch_size_count{model=\"sst\"}"), std::string::npos) << m;
  EXPECT_NE(
      m.find("rnnkit_requests_total{route=\"POST /v1/models/{name}/classify\",status=\"200\"} 17"),
      std::string::npos)
      << m;
  EXPECT_NE(m.find("process_resident_memory_bytes "), std::string::npos);
}

TEST(Serve, MetricsLabelOnlyKnownRoutesAndMethods) {
  // Invented methods and paths once became labels of their own, unbounded and unescaped.
  Running s;
  auto c = s.client();
  for (int k = 0; k < 20; ++k) {
    httplib::Request req;
    req.method = std::string(200, 'Q') + std::to_string(k) + "\"}";
    req.path = "/nowhere/" + std::to_string(k);
    c.send(req);
    c.Get("/nowhere/" + std::to_string(k));
  }
  auto h = c.Get("/health");
  ASSERT_TRUE(h) << "the server stays up";
  // A request is counted after its answer is sent (cpp-httplib's logger): under load the last
  // 404's count may land just after /metrics is asked, so ask until it is there (or 10 s).
  std::string m;
  for (int i = 0; i < 200; ++i) {
    m = c.Get("/metrics")->body;
    if (m.find("route=\"GET other\",status=\"404\"} 20") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(m.find("QQQQ"), std::string::npos) << "an invented method is not a label";
  EXPECT_EQ(m.find("/nowhere"), std::string::npos) << "an unknown path is not a label";
  EXPECT_NE(m.find("route=\"GET other\",status=\"404\"} 20"), std::string::npos) << m;
  std::set<std::string> routes;
  std::istringstream is(m);
  for (std::string line; std::getline(is, line);) {
    if (line.rfind("rnnkit_requests_total{", 0) == 0) routes.insert(line.substr(0, line.find(',')));
  }
  EXPECT_LE(routes.size(), 8u) << m;
}

// --precision bf16: the batch and generation threads run their forward passes under autocast;
// the answers stay within bf16's rounding of predict's fp32 ones (the probabilities within
// 0.02: u = 2^-8 on each product, a few products deep), and generation still streams.
TEST(Serve, Bf16ServesWithinItsRounding) {
  serve::ServeOptions o;
  o.precision = Precision::kBF16;
  Running s(o);
  auto c = s.client();
  const std::vector<std::string> texts{"great food 1", "awful food 2", "rude staff"};
  auto loaded = sentiment::load_models({models().sentiment}, torch::kCPU);
  const auto probs = sentiment::ensemble_probabilities(loaded, texts, torch::kCPU);
  const Json all = post(c, "/v1/models/sst/classify", Json{{"texts", texts}}.dump());
  ASSERT_EQ(all["results"].size(), texts.size());
  double most = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    for (size_t j = 0; j < loaded[0].labels.size(); ++j) {
      const double got = all["results"][i]["probabilities"][loaded[0].labels[j]].get<double>();
      const double want = probs[static_cast<int64_t>(i)][static_cast<int64_t>(j)].item<double>();
      EXPECT_NEAR(got, want, 0.02);
      most = std::max(most, std::abs(got - want));
    }
  }
  EXPECT_GT(most, 0.0) << "the server's answers equal fp32's: its forward was not under bf16";
  const Json tagged = post(c, "/v1/models/ner/tag", Json{{"texts", {"Anna met Boris"}}}.dump());
  EXPECT_EQ(tagged["results"].size(), 1u);
  const Json gen = post(c, "/v1/models/char/generate", R"({"max_tokens": 5, "seed": 1})");
  EXPECT_EQ(gen["tokens"], 5);
  // /score too (it runs on the HTTP thread, which once had no autocast): within bf16's
  // rounding of fp32's log-probability, and not equal to it.
  const std::string line = "ROMEO: good night, good night";
  auto lm_fp32 = lm::load_model(models().lm, torch::kCPU);
  const double want = lm::score_line(lm_fp32, line, torch::kCPU).logprob;
  const Json scored = post(c, "/v1/models/char/score", Json{{"texts", {line}}}.dump());
  const double got = scored["results"][0]["logprob"].get<double>();
  EXPECT_NEAR(got, want, 0.05 * std::abs(want) + 0.5);
  EXPECT_NE(got, want) << "/score's forward was not under bf16";
}

TEST(Serve, TagGivesPredictsEntitiesFromTextOrTokens) {
  Running s;
  auto c = s.client();
  const std::string text = "We met Dara Smith in Lima with Hiro .";
  auto m = ner::load_model(models().ner, torch::kCPU);
  const auto tokens = data::tokenize_ptb(text);
  std::vector<std::string> words;
  for (const auto& t : tokens) words.push_back(t.text);
  const Json want = ner::entities_json(text, tokens, m.tag_scored({words}, torch::kCPU)[0], m);
  const Json got = post(c, "/v1/models/ner/tag", Json{{"texts", {text}}}.dump());
  // The same entities as predict --json; confidences to float rounding.
  auto without_confidence = [](Json j) {
    for (auto& e : j["entities"]) e.erase("confidence");
    return j;
  };
  EXPECT_EQ(without_confidence(got["results"][0]), without_confidence(want));
  ASSERT_EQ(got["results"][0]["entities"].size(), want["entities"].size());
  for (size_t i = 0; i < want["entities"].size(); ++i) {
    EXPECT_NEAR(got["results"][0]["entities"][i]["confidence"].get<double>(),
                want["entities"][i]["confidence"].get<double>(), 1e-6);
  }
  EXPECT_FALSE(want["entities"].empty()) << want;
  // Pre-tokenized, with each token's tag.
  const Json toks =
      post(c, "/v1/models/ner/tag", Json{{"tokens", {words}}, {"tags", true}}.dump())["results"][0];
  EXPECT_EQ(without_confidence(toks)["entities"], without_confidence(want)["entities"]);
  ASSERT_EQ(toks["tokens"].size(), words.size());
  EXPECT_EQ(toks["tokens"][2]["text"], "Dara");
  EXPECT_EQ(toks["tokens"][2]["tag"].get<std::string>().substr(2), "PER") << toks;
  // Confidences: each entity's probability under the CRF, each token's marginal; in (0, 1].
  for (const auto& e : got["results"][0]["entities"]) {
    const double p = e["confidence"].get<double>();
    EXPECT_GT(p, 0.0) << e;
    EXPECT_LE(p, 1.0 + 1e-9) << e;
  }
  for (const auto& t : toks["tokens"]) {
    EXPECT_GT(t["confidence"].get<double>(), 0.0) << t;
    EXPECT_LE(t["confidence"].get<double>(), 1.0 + 1e-9) << t;
  }
  // An entity is never surer than its least sure token (its span is one of the paths through
  // that token's tag).
  for (const auto& e : toks["entities"]) {
    for (const auto& t : toks["tokens"]) {
      if (t["start"] >= e["start"] && t["end"] <= e["end"]) {
        EXPECT_LE(e["confidence"].get<double>(), t["confidence"].get<double>() + 1e-5)
            << e << t;  // float32: the two sums round differently
      }
    }
  }
}

TEST(Serve, ScoreAndGenerateMatchTheCommandLine) {
  Running s;
  auto c = s.client();
  auto m = lm::load_model(models().lm, torch::kCPU);
  const Json scored = post(c, "/v1/models/char/score", Json{{"texts", {"the cat", ""}}}.dump());
  const auto want = lm::score_line(m, "the cat", torch::kCPU);
  EXPECT_NEAR(scored["results"][0]["logprob"].get<double>(), want.logprob, 1e-9);
  EXPECT_EQ(scored["results"][0]["tokens"], want.tokens);
  EXPECT_TRUE(scored["results"][1]["perplexity"].is_null()) << "an empty text has no perplexity";
  // The same seed gives rnnkit-lm sample's text.
  lm::SampleOptions o;
  o.prompt = "the";
  o.max_length = 30;
  o.seed = 7;
  o.temperature = 0.8;
  const std::string text = lm::sample(m, o, torch::kCPU);
  const Json body{{"prompt", "the"}, {"max_tokens", 30}, {"seed", 7}, {"temperature", 0.8}};
  const Json g = post(c, "/v1/models/char/generate", body.dump());
  EXPECT_EQ(g["text"], text);
  // Generations batched together (continuous batching) give each the text it gives alone.
  std::vector<std::future<Json>> many;
  for (int k = 0; k < 6; ++k) {
    many.push_back(std::async(std::launch::async, [&, k] {
      auto cc = s.client();
      const Json b{
          {"prompt", "the"}, {"max_tokens", 40}, {"seed", 100 + k}, {"stop_at_eos", false}};
      return post(cc, "/v1/models/char/generate", b.dump());
    }));
  }
  for (int k = 0; k < 6; ++k) {
    lm::SampleOptions ok = o;
    ok.max_length = 40;
    ok.seed = static_cast<uint64_t>(100 + k);
    ok.temperature = 1.0;
    ok.stop_at_eos = false;
    EXPECT_EQ(many[static_cast<size_t>(k)].get()["text"], lm::sample(m, ok, torch::kCPU)) << k;
  }
  // Streamed: one event per token, then the stop reason; the pieces make the same text.
  Json sbody = body;
  sbody["stream"] = true;
  std::string events;
  auto r = c.Post("/v1/models/char/generate", sbody.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  std::string joined, last;
  std::istringstream is(r->body);
  int n = 0;
  for (std::string line; std::getline(is, line);) {
    if (line.rfind("data: ", 0) != 0) continue;
    const Json e = Json::parse(line.substr(6));
    if (e.contains("text")) {
      joined += e["text"].get<std::string>(), ++n;
      EXPECT_LE(e["logprob"].get<double>(), 0.0) << e;
    }
    last = line;
  }
  EXPECT_EQ(joined, text);
  EXPECT_NE(last.find("\"done\":true"), std::string::npos) << last;
  EXPECT_EQ(Json::parse(last.substr(6))["tokens"], n);
}

TEST(Serve, ATinyTemperatureIsGreedyAndTheServerStaysUp) {
  // {"temperature":1e-310, "stream":true} once killed the server: the division overflowed,
  // multinomial threw inside the streaming content provider, and std::terminate ended it.
  Running s;
  auto c = s.client();
  auto m = lm::load_model(models().lm, torch::kCPU);
  lm::SampleOptions o;
  o.prompt = "A";
  o.max_length = 20;
  o.greedy = true;
  const std::string greedy = lm::sample(m, o, torch::kCPU);
  for (const double t : {1e-310, 1e-45, 1e-7}) {
    const Json body{{"prompt", "A"}, {"max_tokens", 20}, {"temperature", t}};
    EXPECT_EQ(post(c, "/v1/models/char/generate", body.dump())["text"], greedy) << t;
    Json sbody = body;
    sbody["stream"] = true;
    auto r = c.Post("/v1/models/char/generate", sbody.dump(), "application/json");
    ASSERT_TRUE(r) << "the server went away at temperature " << t;
    EXPECT_EQ(r->status, 200);
    std::string joined, last;
    std::istringstream is(r->body);
    for (std::string line; std::getline(is, line);) {
      if (line.rfind("data: ", 0) != 0) continue;
      const Json e = Json::parse(line.substr(6));
      if (e.contains("text")) joined += e["text"].get<std::string>();
      last = line;
    }
    EXPECT_EQ(joined, greedy) << t;
    EXPECT_NE(last.find("\"done\":true"), std::string::npos) << last;
  }
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST(Serve, BadRequestsGetA4xxThatSaysWhy) {
  serve::ServeOptions o;
  o.max_body = 4096;
  o.max_texts = 4;
  o.max_text_bytes = 100;
  Running s(o);
  auto c = s.client();
  const std::string cl = "/v1/models/sst/classify";
  EXPECT_NE(error_of(c, cl, "{\"texts\": [", 400).find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of(c, cl, "[1, 2]", 400).find("expected a JSON object"), std::string::npos);
  // A number beyond a double's range (fuzz_request found it escaping as a 500).
  EXPECT_NE(error_of(c, cl, R"({"texts": [4444444e444]})", 400).find("number overflow"),
            std::string::npos);
  EXPECT_NE(error_of(c, cl, "{}", 400).find("missing field 'texts'"), std::string::npos);
  EXPECT_NE(error_of(c, cl, R"({"texts": "one"})", 400).find("field 'texts': expected an array"),
            std::string::npos);
  EXPECT_NE(
      error_of(c, cl, R"({"texts": ["a", 3]})", 400).find("field 'texts[1]': expected a string"),
      std::string::npos);
  EXPECT_NE(error_of(c, cl, R"({"texts": ["a"], "txt": 1})", 400).find("unknown field 'txt'"),
            std::string::npos);
  EXPECT_NE(error_of(c, cl, R"({"texts": ["  "]})", 400).find("an empty text"), std::string::npos);
  // Unicode's spaces are as empty (U+3000 and a no-break space were accepted while "" was not).
  EXPECT_NE(error_of(c, cl, R"({"texts": ["　  "]})", 400).find("an empty text"),
            std::string::npos);
  EXPECT_NE(error_of(c, cl, "{\"texts\": [\"bad \xff\"]}", 400).find("malformed JSON"),
            std::string::npos)
      << "invalid UTF-8";
  EXPECT_NE(
      error_of(c, cl, R"({"texts": ["a","b","c","d","e"]})", 413).find("limit of 4 (--max-texts)"),
      std::string::npos);
  EXPECT_NE(error_of(c, cl, Json{{"texts", {std::string(101, 'a')}}}.dump(), 413)
                .find("more than the limit of 100 (--max-text-bytes)"),
            std::string::npos);
  // 90 bytes as sent, 180 after NFC (U+0958 decomposes): the limit holds for what is read.
  std::string grows;
  for (int i = 0; i < 30; ++i) grows += "\u0958";
  EXPECT_NE(error_of(c, cl, Json{{"texts", {grows}}}.dump(), 413)
                .find("180 bytes after NFC normalisation (90 as sent)"),
            std::string::npos);
  EXPECT_NE(error_of(c, cl, Json{{"texts", {std::string(5000, 'a')}}}.dump(), 413)
                .find("limit of 4096 bytes (--max-body)"),
            std::string::npos);
  EXPECT_NE(error_of(c, "/v1/models/nope/classify", R"({"texts": ["a"]})", 404)
                .find("no model named 'nope'"),
            std::string::npos);
  EXPECT_NE(
      error_of(c, "/v1/models/ner/classify", R"({"texts": ["a"]})", 400).find("is a ner model"),
      std::string::npos);
  EXPECT_NE(error_of(c, "/v2/whatever", "{}", 404).find("no route POST /v2/whatever"),
            std::string::npos);
  auto get = c.Get(cl.c_str());
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST");
  for (const char* method : {"OPTIONS", "PATCH"}) {  // once 404s
    httplib::Request req;
    req.method = method;
    req.path = cl;
    req.body = "{}";
    req.set_header("Content-Type", "application/json");
    auto r = c.send(req);
    ASSERT_TRUE(r) << method;
    EXPECT_EQ(r->status, 405) << method;
    EXPECT_EQ(r->get_header_value("Allow"), "POST") << method;
  }
  const std::string gen = "/v1/models/char/generate";
  EXPECT_NE(error_of(c, gen, R"({"max_tokens": 0})", 400)
                .find("field 'max_tokens': expected a value in [1, 4096]"),
            std::string::npos);
  EXPECT_NE(error_of(c, gen, R"({"temperature": -1})", 400).find("field 'temperature'"),
            std::string::npos);
  EXPECT_NE(error_of(c, gen, R"({"top_k": "5"})", 400).find("field 'top_k': expected an integer"),
            std::string::npos);
  EXPECT_NE(
      error_of(c, gen, R"({"stream": 1})", 400).find("field 'stream': expected true or false"),
      std::string::npos);
  // The server is still up and answering.
  EXPECT_EQ(c.Get("/health")->status, 200);
}

TEST(Serve, AnApiKeyIsRequiredAndTheQueueIsBounded) {
  serve::ServeOptions o;
  o.api_key = "s3cret-key";
  o.queue = 2;
  Running s(o);
  auto c = s.client();
  const std::string cl = "/v1/models/sst/classify";
  EXPECT_NE(error_of(c, cl, R"({"texts": ["a"]})", 401).find("API key"), std::string::npos);
  EXPECT_NE(error_of(c, cl, R"({"texts": ["a"]})", 401, {{"Authorization", "Bearer wrong"}})
                .find("API key"),
            std::string::npos);
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  EXPECT_EQ(c.Get("/health")->status, 200) << "health needs no key";
  const httplib::Headers key{{"Authorization", "Bearer s3cret-key"}};
  post(c, cl, R"({"texts": ["a"]})", 200, key);
  // The scheme is case-insensitive.
  post(c, cl, R"({"texts": ["a"]})", 200, {{"Authorization", "bearer s3cret-key"}});
  // Three texts never fit a queue of two: 413 at once (a 503 would ask for a retry that can
  // never succeed).
  auto r = c.Post(cl.c_str(), key, R"({"texts": ["a", "b", "c"]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("more than the model's queue holds (at most 2; --queue)"),
            std::string::npos)
      << r->body;
}

TEST(ServeBatching, OneBadTextFailsOnlyItsRequest) {
  // An exception in a batch once failed every request batched with it.
  std::mutex m;
  std::vector<size_t> sizes;
  serve::Batcher b(
      [](const std::vector<Json>& items) {
        std::vector<Json> out;
        for (const auto& i : items) {
          if (i == "bad") throw std::runtime_error("this text breaks the model");
          out.push_back(i.get<std::string>() + "!");
        }
        return out;
      },
      8, 300, 100,
      [&](size_t n) {
        std::lock_guard<std::mutex> lock(m);
        sizes.push_back(n);
      });
  b.submit({"warm", "up"});  // a batch of two: the next one waits 300 ms for company
  auto a = std::async(std::launch::async, [&] { return b.submit({"a"}); });
  auto bad = std::async(std::launch::async, [&] { return b.submit({"bad"}); });
  auto bc = std::async(std::launch::async, [&] { return b.submit({"b", "c"}); });
  EXPECT_EQ(a.get(), std::vector<Json>({"a!"}));
  EXPECT_EQ(bc.get(), std::vector<Json>({"b!", "c!"}));
  try {
    bad.get();
    ADD_FAILURE() << "the bad text's request succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "this text breaks the model");
  }
  std::lock_guard<std::mutex> lock(m);
  EXPECT_NE(std::find(sizes.begin(), sizes.end(), 4u), sizes.end())
      << "the three requests were batched together before the retry";
}

// ---- The connection layer (apps/serve/connection.h), over raw sockets ------------------------

/// A client socket to the server, for what httplib::Client would not send.
struct Raw {
  int fd = -1;
  explicit Raw(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~Raw() { ::close(fd); }
  /// False once the server has closed or reset the connection.
  bool send(const std::string& bytes) {
    for (size_t done = 0; done < bytes.size();) {
      const ssize_t w = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (w <= 0) return false;
      done += static_cast<size_t>(w);
    }
    return true;
  }
  /// What the server sends within `seconds`, up to its close.
  std::string receive(double seconds) {
    std::string got;
    const auto end = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    char buf[65536];
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            end - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
};

int status_of(const std::string& answer) {
  return answer.rfind("HTTP/1.1 ", 0) == 0 ? std::stoi(answer.substr(9, 3)) : 0;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

const std::string kClassify = "POST /v1/models/sst/classify HTTP/1.1\r\nHost: x\r\n";

TEST(ServeConnections, BodiesAreBoundedWhateverTheirFraming) {
  // Chunked, length-less and gzip bodies were read whole before any limit (a valid chunked
  // 2.4 MB body was answered 200 under --max-body 100000); a Content-Length over the limit
  // waited for the whole body before its 413.
  serve::ServeOptions o;
  o.max_body = 100000;
  // Far beyond the 5 s each answer below is waited for: a server that read on to the body's end
  // (which never comes; the connection stays open) would give nothing in that time.
  o.read_timeout_s = 120;
  Running s(o);
  auto chunked = [](const std::string& body, size_t chunk) {
    std::string out;
    for (size_t i = 0; i < body.size(); i += chunk) {
      const std::string part = body.substr(i, chunk);
      out += fmt::format("{:x}\r\n{}\r\n", part.size(), part);
    }
    return out + "0\r\n\r\n";
  };
  {
    Raw r(s.server.port());
    const std::string body = R"({"texts": ["a gorgeous film"]})";
    r.send(kClassify + "Transfer-Encoding: chunked\r\n\r\n" + chunked(body, 7));
    const std::string a = r.receive(30);
    EXPECT_EQ(status_of(a), 200) << a;
  }
  {
    Raw r(s.server.port());
    const std::string big = R"({"texts": [")" + std::string(2400000, 'x') + "\"]}";
    r.send(kClassify + "Transfer-Encoding: chunked\r\n\r\n");
    r.send(chunked(big, 60000));  // the server may close before all of it is sent
    const std::string a = r.receive(10);
    EXPECT_EQ(status_of(a), 413) << a.substr(0, 300);
    EXPECT_NE(a.find("over the limit of 100000 bytes (--max-body)"), std::string::npos) << a;
  }
  struct Case {
    std::string headers, body;
    int status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"Content-Type: application/json\r\n", R"({"texts": ["no length, ends at EOF"]})", 411,
       "needs a Content-Length"},
      {"Content-Length: 20\r\nContent-Encoding: gzip\r\n", std::string(20, 'z'), 415,
       "Content-Encoding 'gzip' is not accepted"},
      {"Content-Length: 2000000\r\n", std::string(1000, ' '), 413,
       "(2000000 bytes) is over the limit of 100000 bytes"},
      {"Content-Length: 5\r\nContent-Length: 6\r\n", "{}   ", 400,
       "Content-Length headers that differ"},
  };
  for (const auto& c : cases) {
    Raw r(s.server.port());
    r.send(kClassify + c.headers + "\r\n" + c.body);  // the connection stays open
    const std::string a = r.receive(5);
    EXPECT_EQ(status_of(a), c.status) << "answered before the body's end? " << c.headers << a;
    EXPECT_NE(a.find(c.says), std::string::npos) << a;
    EXPECT_NE(a.find("Connection: close"), std::string::npos) << "the body is left unread: " << a;
  }
  EXPECT_EQ(s.client().Get("/health")->status, 200);
}

TEST(ServeConnections, HeadersAreBoundedAndPipelinedRequestsAnswered) {
  Running s;
  {
    // 2 million header lines once grew the server by 300 MB.
    Raw r(s.server.port());
    std::string many = "GET /health HTTP/1.1\r\n";
    for (int i = 0; i < 150; ++i) many += fmt::format("X-H{}: v\r\n", i);
    r.send(many + "\r\n");
    const std::string a = r.receive(5);
    EXPECT_EQ(status_of(a), 431) << a;
    EXPECT_NE(a.find("more than 100 header lines"), std::string::npos) << a;
  }
  {
    Raw r(s.server.port());
    std::string big = "GET /health HTTP/1.1\r\n";
    for (int i = 0; i < 20; ++i) big += fmt::format("X-Big{}: {}\r\n", i, std::string(4000, 'b'));
    r.send(big + "\r\n");
    const std::string a = r.receive(5);
    EXPECT_EQ(status_of(a), 431) << a.substr(0, 200);
    EXPECT_NE(a.find("headers are over the limit of 65536 bytes"), std::string::npos) << a;
  }
  {
    // Two requests in one write: two answers (cpp-httplib's own loop lost the second).
    Raw r(s.server.port());
    const std::string h = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    r.send(h + h.substr(0, h.size() - 2) + "Connection: close\r\n\r\n");
    const std::string a = r.receive(5);
    size_t answers = 0;
    for (size_t at = a.find("HTTP/1.1 200"); at != std::string::npos;
         at = a.find("HTTP/1.1 200", at + 1)) {
      ++answers;
    }
    EXPECT_EQ(answers, 2u) << a;
  }
}

TEST(ServeConnections, SlowAndIdleClientsStallNoOne) {
  // Eight clients trickling a byte a second, or 200 idle keep-alive connections, once made
  // /health and every route time out. Here: 4 workers, 4 tricklers and 100 idle connections.
  serve::ServeOptions o;
  o.http_threads = 4;
  o.read_timeout_s = 2;
  Running s(o);
  std::vector<std::unique_ptr<Raw>> tricklers, idle;
  for (int i = 0; i < 4; ++i) {
    tricklers.push_back(std::make_unique<Raw>(s.server.port()));
    tricklers.back()->send("GET /he");
  }
  for (int i = 0; i < 100; ++i) idle.push_back(std::make_unique<Raw>(s.server.port()));
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    for (int k = 0; !stop; ++k) {
      for (size_t i = 1; i < tricklers.size(); ++i) tricklers[i]->send("a");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto c = s.client();
  c.set_read_timeout(8, 0);
  const auto start = std::chrono::steady_clock::now();
  auto h = c.Get("/health");
  const double took = seconds_since(start);
  // The tricklers never stop while /health waits: an answer at all within the client's 8 s means
  // the stalled and idle connections gave way (by the 2 s deadline and the idle half second).
  ASSERT_TRUE(h) << "no answer to /health after " << took << " s";
  EXPECT_EQ(h->status, 200);
  // Within the 2 s deadline (a trickler's worker is freed by then) and 2 s of slack for a busy
  // machine; the stalled clients kept it 8 s and more before.
  EXPECT_LT(took, 4.0) << "/health waited for the stalled clients";
  // A request that outlives its deadline (the first trickler stalled after 7 bytes): 408.
  const std::string a = tricklers[0]->receive(4);
  stop = true;
  trickle.join();
  EXPECT_EQ(status_of(a), 408) << a;
  EXPECT_NE(a.find("did not arrive within 2 s"), std::string::npos) << a;
}

TEST(ServeConnections, PastMaxConnectionsA503AtOnce) {
  serve::ServeOptions o;
  o.http_threads = 2;
  o.max_connections = 3;
  Running s(o);
  std::vector<std::unique_ptr<Raw>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<Raw>(s.server.port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // The extra connection sends nothing: queued, it would only ever be closed unanswered (a new
  // connection silent while others wait), so a 503 at all is the refusal by the accepting thread.
  Raw extra(s.server.port());
  const std::string a = extra.receive(3);
  EXPECT_EQ(status_of(a), 503) << a;
  EXPECT_NE(a.find("Retry-After: 1"), std::string::npos) << a;
  EXPECT_NE(a.find("--max-connections"), std::string::npos) << a;
  held.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(s.client().Get("/health")->status, 200);
}

TEST(ServeConnections, AGenerationWhoseClientLeftStops) {
  // A non-streamed generation once ran to max_tokens for a client that had gone.
  serve::ServeOptions o;
  o.max_tokens = 1000000;
  Running s(o);
  auto generated = [&] {
    const std::string m = s.client().Get("/metrics")->body;
    const auto at = m.find("\nrnnkit_tokens_generated_total ");
    return at == std::string::npos ? int64_t{-1} : std::stoll(m.substr(at + 31));
  };
  const int64_t before = generated();
  ASSERT_GE(before, 0);
  {
    Raw r(s.server.port());
    const std::string body =
        R"({"prompt": "ROMEO:", "max_tokens": 1000000, "stop_at_eos": false, "seed": 3})";
    r.send(
        fmt::format("POST /v1/models/char/generate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    "application/json\r\nContent-Length: {}\r\n\r\n{}",
                    body.size(), body));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }  // the client leaves
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const int64_t a = generated();
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const int64_t b = generated();
  EXPECT_GT(a, before) << "the generation ran";
  EXPECT_EQ(a, b) << "the generation stopped within 700 ms of its client leaving";
  EXPECT_LT(b - before, 1000000);
  // Its thread answered 499 (to nobody), and the request was counted so.
  const std::string m = s.client().Get("/metrics")->body;
  EXPECT_EQ(metric(m,
                   "rnnkit_requests_total{route=\"POST /v1/models/{name}/generate\","
                   "status=\"499\"}"),
            1)
      << m;
  EXPECT_EQ(s.client().Get("/health")->status, 200);
}

TEST(ServeBatching, OneTextRequestsOfManyClientsShareABatch) {
  // The claim of dynamic batching, shown by the server's own histogram: eight clients' one-text
  // requests take fewer than eight forward passes. A two-text request first makes the next
  // batch wait (--max-delay-ms, here 2 s) for company, so the eight meet in the queue.
  serve::ServeOptions o;
  o.max_delay_ms = 2000;
  Running s(o);
  auto c = s.client();
  post(c, "/v1/models/sst/classify", R"({"texts": ["warm", "up"]})");
  const std::string before = c.Get("/metrics")->body;
  std::vector<std::future<Json>> answers;
  for (int k = 0; k < 8; ++k) {
    answers.push_back(std::async(std::launch::async, [&, k] {
      auto cc = s.client();
      return post(cc, "/v1/models/sst/classify",
                  Json{{"texts", {"client " + std::to_string(k) + " liked it"}}}.dump());
    }));
  }
  for (auto& a : answers) EXPECT_EQ(a.get()["results"].size(), 1u);
  const std::string after = c.Get("/metrics")->body;
  const std::string count = "rnnkit_batch_size_count{model=\"sst\"}";
  const std::string sum = "rnnkit_batch_size_sum{model=\"sst\"}";
  const std::string alone = "rnnkit_batch_size_bucket{model=\"sst\",le=\"1\"}";
  ASSERT_GE(metric(before, count), 1) << before;
  EXPECT_EQ(metric(after, sum) - metric(before, sum), 8) << "each text in one forward pass";
  EXPECT_LT(metric(after, count) - metric(before, count), 8) << after;
  EXPECT_LT(metric(after, alone) - metric(before, alone), 8) << after;
}

TEST(ServeBatching, AnAbandonedQueueAnswers503AtOnce) {
  // When --drain-seconds ran out, the requests still waiting for a batch were cut off with the
  // process; now each hears a 503 first, the one in the running batch too.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> batches{0};
  serve::Batcher b(
      [&](const std::vector<Json>& items) {
        ++batches;
        released.wait();  // the first batch runs until the test lets it go
        return items;
      },
      1, 0, 100, [](size_t) {});
  auto running = std::async(std::launch::async, [&] { return b.submit({"first"}); });
  while (batches == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto waiting = std::async(std::launch::async, [&] { return b.submit({"second", "third"}); });
  while (b.depth() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  b.abandon("shutting down; retry");
  for (auto* f : {&running, &waiting}) {
    ASSERT_EQ(f->wait_for(std::chrono::seconds(5)), std::future_status::ready)
        << "an abandoned request still waits";
    try {
      f->get();
      ADD_FAILURE() << "an abandoned request succeeded";
    } catch (const serve::HttpError& e) {
      EXPECT_EQ(e.status, 503);
      EXPECT_STREQ(e.what(), "shutting down; retry");
    }
  }
  EXPECT_EQ(b.depth(), 0u);
  EXPECT_THROW(b.submit({"late"}), serve::HttpError);
  release.set_value();  // the batch in flight ends; its answer is dropped, not delivered twice
}

TEST(ServeConnections, AnExpiredDrainAnswersGenerations503) {
  // Server::expire (what rnnkit-serve calls when --drain-seconds runs out): a generation
  // waiting for its tokens gets a 503 that says why, a streamed one an error event.
  serve::ServeOptions o;
  o.max_tokens = 1000000;
  Running s(o);
  const std::string body =
      R"({"prompt": "ROMEO:", "max_tokens": 1000000, "stop_at_eos": false, "seed": 3)";
  auto whole = std::async(std::launch::async, [&] {
    auto c = s.client();
    return post(c, "/v1/models/char/generate", body + "}", 503);
  });
  Raw streamed(s.server.port());
  const std::string sse = body + R"(, "stream": true})";
  streamed.send(
      fmt::format("POST /v1/models/char/generate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  "application/json\r\nContent-Length: {}\r\n\r\n{}",
                  sse.size(), sse));
  std::string events = streamed.receive(0.5);
  EXPECT_EQ(status_of(events), 200) << events.substr(0, 300);
  s.server.expire("the drain ran out; retry");
  ASSERT_EQ(whole.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(whole.get()["error"], "the drain ran out; retry");
  events += streamed.receive(3);
  EXPECT_NE(events.find(R"("error":"the drain ran out; retry")"), std::string::npos)
      << events.substr(events.size() > 600 ? events.size() - 600 : 0);
  auto c = s.client();
  EXPECT_EQ(error_of(c, "/v1/models/sst/classify", R"({"texts": ["late"]})", 503),
            "the drain ran out; retry");
}

TEST(ServeConnections, RangesAreIgnoredAndMultipartRefused) {
  // 1,100 ranges once made 9 MB of answer from the 7.7 kB page; a range of a JSON answer is no
  // use to anyone. The whole body comes back, 200.
  Running s;
  auto c = s.client();
  auto page = c.Get("/", {{"Range", "bytes=0-10,0-10,0-10"}});
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_FALSE(page->has_header("Content-Range"));
  EXPECT_NE(page->body.find("</html>"), std::string::npos);
  auto r = c.Post("/v1/models/sst/classify", {{"Range", "bytes=0-5"}}, R"({"texts": ["fine"]})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Json::parse(r->body)["results"].size(), 1u);
  // One cpp-httplib cannot parse is answered before the server sees it: a 416 that says so.
  auto bad = c.Get("/health", {{"Range", "bytes=9-1"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 416);
  EXPECT_NE(Json::parse(bad->body)["error"].get<std::string>().find("send no Range"),
            std::string::npos)
      << bad->body;
  // A multipart form was parsed by cpp-httplib and answered a bare 400.
  auto form = c.Post("/v1/models/sst/classify",
                     httplib::MultipartFormDataItems{{"texts", "a film", "", ""}});
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 415);
  EXPECT_NE(form->body.find("send the JSON body as application/json"), std::string::npos)
      << form->body;
  EXPECT_EQ(s.client().Get("/health")->status, 200);
}

TEST(ServeConnections, LatencyCountsFromTheRequestsOwnStart) {
  // A request refused before routing (a bad request line) was timed from the start of the last
  // request its thread had routed: 1.5 s here, and any age in production.
  serve::ServeOptions o;
  o.http_threads = 1;
  Running s(o);
  EXPECT_EQ(s.client().Get("/health")->status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Raw r(s.server.port());
  r.send("BLAH\r\n\r\n");
  EXPECT_EQ(status_of(r.receive(3)), 400);
  const std::string series = "rnnkit_request_seconds_bucket{route=\"OTHER other\",le=\"1\"}";
  std::string m;
  for (int i = 0; i < 100 && metric(m, series) < 0; ++i) {  // counted after its answer
    m = s.client().Get("/metrics")->body;
    if (metric(m, series) < 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(metric(m, series), 1) << m;
}

TEST(Serve, AFullQueueIsA503WithRetryAfter) {
  // docs/serving.md: past --queue texts waiting, a request that could fit later is told to retry
  // (503 with Retry-After), not refused for good (413). After a two-text batch the next batch
  // waits --max-delay-ms (here 3 s) for company: two texts sit in a queue of two meanwhile.
  serve::ServeOptions o;
  o.queue = 2;
  o.max_delay_ms = 3000;
  Running s(o);
  auto c = s.client();
  const std::string cl = "/v1/models/sst/classify";
  post(c, cl, R"({"texts": ["warm", "up"]})");
  auto waiting = std::async(std::launch::async, [&] {
    auto cc = s.client();
    return post(cc, cl, R"({"texts": ["one", "two"]})");
  });
  const std::string depth = "rnnkit_queue_depth{model=\"sst\"}";
  double queued = 0;
  for (int i = 0; i < 200 && queued < 2; ++i) {
    queued = metric(c.Get("/metrics")->body, depth);
    if (queued < 2) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(queued, 2) << "the two texts never waited in the queue";
  auto r = c.Post(cl.c_str(), R"({"texts": ["three"]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_NE(Json::parse(r->body)["error"].get<std::string>().find(
                "the model's queue is full (2 texts waiting, at most 2; --queue); retry later"),
            std::string::npos)
      << r->body;
  EXPECT_EQ(waiting.get()["results"].size(), 2u) << "the queued request is still answered";
  post(c, cl, R"({"texts": ["three"]})");  // and once the queue has room, the retry succeeds
}

TEST(Serve, HealthIs503UntilTheModelsAreLoadedAndWhileDraining) {
  // A load balancer must not send work before the models are in, nor during a drain.
  serve::ServeOptions o;
  o.port = 0;
  serve::Server server(o, {{"sst", {models().sentiment}}}, torch::kCPU);
  server.bind();
  std::thread t([&] { server.run(); });
  server.wait_until_running();
  httplib::Client c("127.0.0.1", server.port());
  auto loading = c.Get("/health");
  ASSERT_TRUE(loading);
  EXPECT_EQ(loading->status, 503);
  EXPECT_EQ(Json::parse(loading->body)["status"], "loading");
  EXPECT_EQ(c.Get("/v1/models")->status, 503);
  server.load();
  auto ok = c.Get("/health");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(Json::parse(ok->body)["models"], 1);
  server.begin_drain();
  auto draining = c.Get("/health");
  ASSERT_TRUE(draining);
  EXPECT_EQ(draining->status, 503);
  EXPECT_EQ(Json::parse(draining->body)["status"], "draining");
  server.stop();
  t.join();
}

TEST(ServeConnections, FramingIsStrictAndABadRequestClosesItsConnection) {
  // Each of these was read leniently by cpp-httplib, and the connection kept: behind a proxy
  // that frames by length, the bytes after the first request's end were answered as a second
  // request (request smuggling). Each is now refused, and nothing after it is read.
  Running s;
  const std::string smuggled = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string body = R"({"texts": ["fine"]})";
  struct Case {
    std::string name, request;
    int status;
    std::string says;
  };
  const std::string post = "POST /v1/models/sst/classify HTTP/1.1\r\n";
  const std::vector<Case> cases = {
      {"chunked and a length",
       post + "Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n" +
           fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", body.size(), body),
       400, "both Transfer-Encoding and Content-Length"},
      {"gzip, chunked", post + "Host: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
       "Transfer-Encoding 'gzip, chunked' is not supported"},
      {"xchunked", post + "Host: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501,
       "Transfer-Encoding 'xchunked' is not supported"},
      {"chunked;q=1", post + "Host: x\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 501,
       "is not supported"},
      {"a signed length", post + "Host: x\r\nContent-Length: +19\r\n\r\n" + body, 400,
       "Content-Length '+19' is not a number of bytes"},
      {"a line without a colon",
       post + "Host: x\r\nContent-Length: 19\r\nGET /v1/models HTTP/1.1\r\n\r\n" + body, 400,
       "is not 'name: value'"},
      {"a space before the colon", post + "Host: x\r\nContent-Length : 19\r\n\r\n" + body, 400,
       "is not a token"},
      {"a NUL in a value",
       post + "Host: x\r\nX-A: a" + std::string(1, '\0') + "b\r\nContent-Length: 19\r\n\r\n" + body,
       400, "a NUL byte"},
      {"a bare CR in a value", post + "Host: x\r\nX-A: a\rb\r\nContent-Length: 19\r\n\r\n" + body,
       400, "a CR not followed by LF"},
      {"no Host", post + "Content-Length: 19\r\n\r\n" + body, 400,
       "exactly one Host header, not 0"},
      {"two Hosts", post + "Host: x\r\nHost: y\r\nContent-Length: 19\r\n\r\n" + body, 400,
       "exactly one Host header, not 2"},
      {"a malformed request line", "BLAH\r\nHost: x\r\n\r\n", 400, ""},
  };
  for (const auto& c : cases) {
    Raw r(s.server.port());
    r.send(c.request + smuggled);
    const std::string a = r.receive(3);
    EXPECT_EQ(status_of(a), c.status) << c.name << ": " << a.substr(0, 300);
    if (!c.says.empty()) EXPECT_NE(a.find(c.says), std::string::npos) << c.name << ": " << a;
    EXPECT_NE(a.find("Connection: close"), std::string::npos) << c.name << ": " << a;
    size_t answers = 0;  // status lines ("HTTP/1.1 400 "), not the words in a message
    for (size_t at = a.find("HTTP/1.1 "); at != std::string::npos;
         at = a.find("HTTP/1.1 ", at + 1)) {
      if (at + 12 < a.size() && std::isdigit(static_cast<unsigned char>(a[at + 9])) != 0 &&
          a[at + 12] == ' ')
        ++answers;
    }
    EXPECT_EQ(answers, 1u) << c.name << ": the bytes after a refused request were answered: " << a;
  }
  // curl -d labels a body form-encoded: a small one is read as JSON, a large one is a 415 that
  // says what to send (it was a 413 naming --max-body, which it was far under).
  {
    auto c = s.client();
    auto small = c.Post("/v1/models/sst/classify", body, "application/x-www-form-urlencoded");
    ASSERT_TRUE(small);
    EXPECT_EQ(small->status, 200) << small->body;
    const std::string big = Json{{"texts", {std::string(9000, 'a')}}}.dump();
    auto large = c.Post("/v1/models/sst/classify", big, "application/x-www-form-urlencoded");
    ASSERT_TRUE(large);
    EXPECT_EQ(large->status, 415) << large->body;
    EXPECT_NE(large->body.find("send the JSON body with 'Content-Type: application/json'"),
              std::string::npos)
        << large->body;
  }
  // HTTP/1.0 needs no Host, and a well-framed chunked body is still served.
  {
    Raw r(s.server.port());
    r.send("GET /health HTTP/1.0\r\n\r\n");
    EXPECT_EQ(status_of(r.receive(3)), 200);
  }
  {
    Raw r(s.server.port());
    r.send(post + "Host: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n" +
           fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", body.size(), body));
    EXPECT_EQ(status_of(r.receive(10)), 200);
  }
  EXPECT_EQ(s.client().Get("/health")->status, 200);
}

TEST(ServeBatching, ALongRequestSharesItsBatchesAndEndsAtItsDeadline) {
  // A request of many texts once held the batcher until its last text: a one-text request behind
  // it waited for all of them (eight long translations, 183 s). Now the batches take the
  // waiting requests in turn, and a request past its deadline gets 504.
  std::mutex m;
  std::vector<std::string> order;  // the items in the order they were run
  serve::Batcher b(
      [&](const std::vector<Json>& items) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::lock_guard<std::mutex> lock(m);
        for (const auto& i : items) order.push_back(i.get<std::string>());
        return items;
      },
      2, 0, 100, [](size_t) {}, 1.0);
  std::vector<Json> many;
  for (int i = 0; i < 30; ++i) many.push_back("long" + std::to_string(i));
  const auto start = std::chrono::steady_clock::now();
  auto long_request = std::async(std::launch::async, [&] { return b.submit(many); });
  while (b.depth() == 30) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto short_request = std::async(std::launch::async, [&] { return b.submit({"short"}); });
  EXPECT_EQ(short_request.get(), std::vector<Json>({"short"}));
  const double short_took = seconds_since(start);
  // 30 texts in batches of 2 at 100 ms each take 1.5 s: past the 1 s deadline.
  try {
    long_request.get();
    ADD_FAILURE() << "the long request outlived its deadline and succeeded";
  } catch (const serve::HttpError& e) {
    EXPECT_EQ(e.status, 504);
    EXPECT_NE(std::string(e.what()).find("not done within 1 s (--max-request-seconds)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(b.depth(), 0u) << "the late request's texts stayed in the queue";
  std::lock_guard<std::mutex> lock(m);
  const auto at = std::find(order.begin(), order.end(), "short") - order.begin();
  EXPECT_LE(at, 4) << "the one-text request waited behind the long one";
  EXPECT_LT(short_took, 1.0);
  EXPECT_LT(order.size(), 30u) << "the late request's texts were still run";
}

}  // namespace

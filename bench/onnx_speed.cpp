// Inference speed of an exported model: ONNX Runtime (onnxruntime-node, through
// tests/onnx/ort_run.js) against rnnkit's own forward pass (what predict runs), on the same
// batches of the same sentences, in the same run. bench/onnx_speed.sh runs it for the CoNLL
// tagger and the SST-2 classifier; docs/export.md has the figures.
//
//   rnnkit_onnx_bench --app ner|sentiment --checkpoint C --onnx M --file F [--batch 32]
//                     [--sentences 512] [--threads 2] [--repeat 3]
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <fmt/core.h>
#include <torch/torch.h>
#include <cxxopts.hpp>

#include <rnnkit/train/cli.h>
#include <rnnkit/train/json.h>

#include "ner/ner.h"
#include "sentiment/sentiment.h"

using namespace rnnkit;
using train::Json;

namespace {

Json tensor_json(const torch::Tensor& t_) {
  const auto t = t_.contiguous();
  return {{"type", "int64"},
          {"dims", t.sizes().vec()},
          {"data", std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel())}};
}

std::vector<std::vector<std::string>> read_sentences(const std::string& path, bool conll,
                                                     size_t n) {
  std::ifstream in(path);
  TORCH_CHECK(in, path, ": cannot read");
  std::vector<std::vector<std::string>> out(1);
  for (std::string line; std::getline(in, line) && out.size() <= n;) {
    if (conll) {
      if (line.empty() || line.rfind("-DOCSTART-", 0) == 0) {
        if (!out.back().empty()) out.emplace_back();
        continue;
      }
      out.back().push_back(line.substr(0, line.find(' ')));
    } else {  // stsa: LABEL text
      std::istringstream words(line.substr(line.find(' ') + 1));
      for (std::string w; words >> w;) out.back().push_back(w);
      if (!out.back().empty()) out.emplace_back();
    }
  }
  while (!out.empty() && (out.back().empty() || out.size() > n)) out.pop_back();
  return out;
}

}  // namespace

int run(int argc, char** argv) {
  cxxopts::Options cli("rnnkit_onnx_bench", "ONNX Runtime against rnnkit's forward pass");
  cli.add_options()("app", "ner or sentiment", cxxopts::value<std::string>())(
      "checkpoint", "the checkpoint", cxxopts::value<std::string>())("onnx", "its export",
                                                                     cxxopts::value<std::string>())(
      "file", "CoNLL (ner) or stsa (sentiment) sentences", cxxopts::value<std::string>())(
      "batch", "sentences per batch", cxxopts::value<int64_t>()->default_value("32"))(
      "sentences", "how many", cxxopts::value<size_t>()->default_value("512"))(
      "threads", "intra-op threads, both sides", cxxopts::value<int>()->default_value("2"))(
      "repeat", "timed passes over the sentences", cxxopts::value<int>()->default_value("3"))(
      "node-path", "node_modules with onnxruntime-node", cxxopts::value<std::string>())(
      "ort-run", "tests/onnx/ort_run.js", cxxopts::value<std::string>())("h,help", "this help");
  const auto a = cli.parse(argc, argv);
  if (a.count("help")) {
    std::cout << cli.help() << "\n";
    return 0;
  }
  for (const char* key : {"app", "checkpoint", "onnx", "file", "node-path", "ort-run"}) {
    if (!a.count(key))
      throw cxxopts::exceptions::exception(std::string("--") + key + " is required");
  }
  const auto app = a["app"].as<std::string>();
  const int64_t B = a["batch"].as<int64_t>();
  const int threads = a["threads"].as<int>(), repeat = a["repeat"].as<int>();
  at::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  const auto sentences =
      read_sentences(a["file"].as<std::string>(), app == "ner", a["sentences"].as<size_t>());

  std::vector<std::function<void()>> forward;  // one per batch
  Json runs = Json::array();
  std::optional<ner::Loaded> tagger;
  std::optional<sentiment::Loaded> classifier;
  if (app == "ner") {
    tagger = ner::load_model(a["checkpoint"].as<std::string>(), torch::kCPU);
  } else {
    classifier = sentiment::load_model(a["checkpoint"].as<std::string>(), torch::kCPU);
  }
  for (size_t i = 0; i < sentences.size(); i += static_cast<size_t>(B)) {
    const std::vector<std::vector<std::string>> part(
        sentences.begin() + static_cast<std::ptrdiff_t>(i),
        sentences.begin() + static_cast<std::ptrdiff_t>(std::min(sentences.size(), i + B)));
    Json inputs;
    if (tagger) {
      auto batch = tagger->batch(part);
      const int64_t n = batch.words.size(0), T = batch.words.size(1), L = batch.chars.size(1);
      inputs = {{"words", tensor_json(batch.words)},
                {"lengths", tensor_json(batch.lengths)},
                {"casing", tensor_json(batch.casing)},
                {"chars", tensor_json(torch::zeros({n * T, L}, torch::kLong)
                                          .index_copy(0, batch.positions, batch.chars)
                                          .view({n, T, L}))},
                {"char_lengths", tensor_json(torch::zeros({n * T}, torch::kLong)
                                                 .index_copy(0, batch.positions, batch.char_lengths)
                                                 .view({n, T}))}};
      forward.push_back([&m = *tagger, batch] { m.model->forward(batch); });
    } else {
      auto& m = *classifier;
      std::vector<std::vector<int64_t>> ids;
      int64_t T = 0;
      for (const auto& s : part) {
        std::string text;
        for (const auto& w : s) text += w + " ";
        ids.push_back(m.vocab.encode(m.config.tokenize(text)));
        if (ids.back().empty()) ids.back().push_back(data::Vocab::kUnk);
        T = std::max<int64_t>(T, static_cast<int64_t>(ids.back().size()));
      }
      auto tokens = torch::zeros({static_cast<int64_t>(ids.size()), T}, torch::kLong);
      std::vector<int64_t> len;
      for (size_t k = 0; k < ids.size(); ++k) {
        len.push_back(static_cast<int64_t>(ids[k].size()));
        tokens[static_cast<int64_t>(k)].slice(0, 0, len.back()) = torch::tensor(ids[k]);
      }
      const auto lengths = torch::tensor(len, torch::kLong);
      inputs = {{"tokens", tensor_json(tokens)}, {"lengths", tensor_json(lengths)}};
      forward.push_back([&m, tokens, lengths] { m.model->forward(tokens, lengths); });
    }
    runs.push_back({{"inputs", inputs}});
  }
  for (auto& f : forward) f();  // warm-up, as ort_run.js runs each batch once first
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < repeat; ++r)
    for (auto& f : forward) f();
  const double ours = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const std::string req = a["onnx"].as<std::string>() + ".bench.json",
                    res = a["onnx"].as<std::string>() + ".bench.out.json";
  std::ofstream(req)
      << Json{{"threads", threads}, {"runs", runs}, {"time", {{"repeat", repeat}}}}.dump();
  const std::string cmd = "NODE_PATH='" + a["node-path"].as<std::string>() + "' node '" +
                          a["ort-run"].as<std::string>() + "' '" + a["onnx"].as<std::string>() +
                          "' '" + req + "' '" + res + "'";
  TORCH_CHECK(std::system(cmd.c_str()) == 0, cmd, " failed");
  std::ifstream in(res);
  const double theirs = Json::parse(in)["seconds"].get<double>();
  const double n = static_cast<double>(sentences.size()) * repeat;
  fmt::print(
      "{:<10} batch {:>3}  threads {}  {} sentences x {}:  rnnkit {:8.1f} sent/s   "
      "onnxruntime {:8.1f} sent/s   ratio ort/rnnkit {:.2f}\n",
      app, B, threads, sentences.size(), repeat, n / ours, n / theirs, ours / theirs);
  return 0;
}

// A bad option is a usage error (exit 2) and a bad file an error (exit 1), as in the apps.
int main(int argc, char** argv) {
  return rnnkit::train::guarded_main("rnnkit_onnx_bench", run, argc, argv);
}

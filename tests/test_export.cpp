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

/// Whether ONNX Runtime is installed where the build expects it; without it the tests say so
/// and skip, unless RNNKIT_REQUIRE_ORT=1 (the README's test command) makes that a failure.
bool have_runtime() {
  const bool there = std::filesystem::exists(env("NODE_PATH") + "/onnxruntime-node");
  if (!there && env("RNNKIT_REQUIRE_ORT") == "1") {
    ADD_FAILURE() << "onnxruntime-node is not in " << env("NODE_PATH")
                  << ": scripts/setup.sh onnxruntime BUILD_DIR installs it";
  }
  return there;
}
#define REQUIRE_RUNTIME()                                                     \
  if (!have_runtime())                                                        \
  GTEST_SKIP() << "onnxruntime-node is not in NODE_PATH=" << env("NODE_PATH") \
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
  const auto data = j["data"].get<std::vector<double>>();
  return torch::tensor(data, torch::kDouble).view(dims).to(torch::kFloat);
}

/// ONNX Runtime's answer to `request` (tests/onnx/ort_run.js) for the model at `model`.
Json run_ort(const std::string& model, const Json& request) {
  const auto in = model + ".request.json", out = model + ".result.json";
  std::ofstream(in) << request.dump();
  std::filesystem::remove(out);
  const std::string cmd = "node " + env("RNNKIT_ORT_RUN") + " '" + model + "' '" + in + "' '" +
                          out + "' > '" + model + ".log' 2>&1";
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
  std::string cmd = env("RNNKIT_PYTHON") +
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

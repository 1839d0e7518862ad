// rnnkit-sentiment export: the classifier as an ONNX graph (docs/export.md).
//
//     tokens [batch, steps] int64, lengths [batch] int64  ->  probabilities [batch, classes]
#include <torch/torch.h>

#include <rnnkit/export/onnx.h>

#include "sentiment/sentiment.h"

namespace rnnkit::sentiment {

namespace ox = onnx_export;
using ox::Attr;
using ox::Type;

void export_onnx(Loaded& m, const std::string& path) {
  auto& model = *m.model;
  ox::check_exportable(*model.rnn, "[model] cell");
  torch::NoGradGuard no_grad;
  const auto& o = model.options;
  const int64_t L = o.rnn().num_layers(), K = model.rnn->num_directions();
  ox::Graph g("rnnkit_sentiment",
              "rnnkit-sentiment classifier: " + m.config.architecture(m.vocab.size(), m.labels));
  g.input("tokens", Type::kInt64, {"batch", "steps"}, "token ids, padded with 0 past each length");
  g.input("lengths", Type::kInt64, {"batch"}, "the number of real tokens of each text, >= 1");
  const auto e = g.node("Gather", {g.constant(model.embedding->weight, "E"), "tokens"});
  const auto x = g.node("Transpose", {e}, {Attr("perm", {1, 0, 2})});  // [T, B, E]
  const auto r = ox::add_rnn(g, *model.rnn, x, "lengths");
  std::string s;  // [B, K*H]
  switch (o.pooling()) {
    case Pooling::kLast: {  // the last layer's final states, forward then backward
      const auto last = g.node(
          "Slice", {r.h_n, g.ints({(L - 1) * K}), g.ints({L * K}), g.ints({0})});  // [K, B, H]
      s = g.node("Reshape",
                 {g.node("Transpose", {last}, {Attr("perm", {1, 0, 2})}), g.ints({0, -1})});
      break;
    }
    case Pooling::kMean: {  // the output is zero past each length: the sum counts real steps
      const auto n = g.node("Unsqueeze", {g.node("Cast", {"lengths"}, {Attr("to", int64_t{1})}),
                                          g.ints({1})});  // float [B, 1]
      s = g.node("Div", {g.node("ReduceSum", {r.output, g.ints({0})}, {Attr("keepdims", 0)}), n});
      break;
    }
    case Pooling::kMax: {
      const auto mask = ox::step_mask(g, r.output, "lengths");
      const auto masked = g.node("Where", {mask, r.output, g.scalar(-INFINITY)});
      s = g.node("ReduceMax", {masked},
                 {Attr("axes", std::vector<int64_t>{0}), Attr("keepdims", 0)});
      break;
    }
  }
  const auto logits = g.node(
      "Gemm", {s, g.constant(model.output->weight, "W_y"), g.constant(model.output->bias, "b_y")},
      {Attr("transB", 1)});
  const auto C = static_cast<int64_t>(m.labels.size());
  g.output(g.node("Softmax", {logits}, {Attr("axis", -1)}), "probabilities", Type::kFloat,
           {"batch", C}, "the class probabilities, in the order of the metadata's labels");

  train::Json meta;
  meta["app"] = "sentiment";
  meta["architecture"] = m.config.architecture(m.vocab.size(), m.labels);
  meta["labels"] = m.labels;
  meta["tokenizer"] = {{"split", "whitespace"},
                       {"lowercase", m.config.lowercase},
                       {"lowercase_means", "each code point's simple lowercase (utf8proc)"},
                       {"unknown_id", data::Vocab::kUnk},
                       {"padding_id", data::Vocab::kPad},
                       {"empty_text", "one <unk> token"}};
  meta["vocab"] = ox::tokens_of(m.vocab);
  ox::save(g, meta, path);
}

int export_main(int argc, char** argv) {
  return ox::export_command("rnnkit-sentiment", argc, argv,
                            [](const std::string& checkpoint, const std::string& output) {
                              auto m = load_model(checkpoint, torch::kCPU);
                              export_onnx(m, output);
                            });
}

}  // namespace rnnkit::sentiment

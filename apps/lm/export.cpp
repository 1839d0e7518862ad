// rnnkit-lm export: the language model as an ONNX graph a caller steps (docs/export.md).
//
//     tokens [batch, steps], lengths [batch]  int64
//     h0 [layers, batch, hidden] (and c0 for LSTMs)  the state the window starts from
//  -> log_probs [batch, steps, vocab]  log p(next token | tokens up to this step)
//     h_n (and c_n)  the state after each sequence's last real token, to feed as h0 (c0)
#include <torch/torch.h>

#include <rnnkit/export/onnx.h>

#include "lm/lm.h"

namespace rnnkit::lm {

namespace ox = onnx_export;
using ox::Attr;
using ox::Type;

void export_onnx(Loaded& m, const std::string& path) {
  auto& model = *m.model;
  const auto& o = model.options;
  ox::check_exportable(*model.rnn, "[model] cell");
  torch::NoGradGuard no_grad;
  const int64_t L = o.rnn().num_layers(), H = o.rnn().hidden_size(), V = m.vocab.size();
  const bool memory = model.rnn->cell(0, 0).has_memory_cell();
  const std::string arch = m.config.architecture(V);
  ox::Graph g("rnnkit_lm", "rnnkit-lm language model: " + arch);
  g.input("tokens", Type::kInt64, {"batch", "steps"}, "token ids, 0 past each length");
  g.input("lengths", Type::kInt64, {"batch"}, "the number of real tokens of each row, >= 1");
  g.input("h0", Type::kFloat, {L, "batch", H}, "the state to start from (zeros at a text's start)");
  if (memory) g.input("c0", Type::kFloat, {L, "batch", H}, "the memory cells to start from");
  std::string x;  // [B, T, E]
  if (o.embedding_size() > 0) {
    x = g.node("Gather", {g.constant(model.embedding->weight, "E"), "tokens"});
  } else {
    x = g.node("OneHot", {"tokens", g.ints({V}), g.constant(torch::tensor({0.f, 1.f}), "on_off")},
               {Attr("axis", -1)});
  }
  const auto r = ox::add_rnn(g, *model.rnn, g.node("Transpose", {x}, {Attr("perm", {1, 0, 2})}),
                             "lengths", "h0", memory ? "c0" : "");
  const auto a = g.node("Transpose", {r.output}, {Attr("perm", {1, 0, 2})});  // [B, T, H]
  const auto logits = g.node("Add", {g.node("MatMul", {a, g.constant(model.W_y.t(), "W_y")}),
                                     g.constant(model.b_y, "b_y")});
  g.output(g.node("LogSoftmax", {logits}, {Attr("axis", -1)}), "log_probs", Type::kFloat,
           {"batch", "steps", V}, "log p(next token) after each step; meaningless past a length");
  g.output(r.h_n, "h_n", Type::kFloat, {L, "batch", H}, "the state after each row's last token");
  if (memory) g.output(r.c_n, "c_n", Type::kFloat, {L, "batch", H}, "the memory cells after it");

  train::Json meta;
  meta["app"] = "lm";
  meta["architecture"] = arch;
  meta["tokenizer"] = {
      {"level", m.config.level},
      {"split", m.config.level == "char" ? "one token per Unicode code point"
                                         : "whitespace; a line's end is the token <eos>"},
      {"lowercase", m.config.lowercase},
      {"start_id", data::Vocab::kEos},
      {"start", "a text is predicted from <eos> (id 3): feed it first, with zero states"},
      {"end_id", data::Vocab::kEos},
      {"unknown_id", data::Vocab::kUnk},
      {"padding_id", data::Vocab::kPad}};
  meta["vocab"] = ox::tokens_of(m.vocab);
  ox::save(g, meta, path);
}

int export_main(int argc, char** argv) {
  return ox::export_command("rnnkit-lm", argc, argv,
                            [](const std::string& checkpoint, const std::string& output) {
                              auto m = load_model(checkpoint, torch::kCPU);
                              export_onnx(m, output);
                            });
}

}  // namespace rnnkit::lm

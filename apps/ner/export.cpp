// rnnkit-ner export: the tagger as an ONNX graph (docs/export.md).
//
//     words [batch, steps], lengths [batch]                        int64
//     casing [batch, steps]                                        with casing features
//     chars [batch, steps, letters], char_lengths [batch, steps]   with character features
//  -> emissions [batch, steps, tags]; transitions [tags, tags], start_transitions and
//     end_transitions [tags] (CRF decoders; -inf where the tag scheme forbids a transition)
#include <cmath>

#include <torch/torch.h>

#include <rnnkit/export/onnx.h>

#include "ner/ner.h"

namespace rnnkit::ner {

namespace ox = onnx_export;
using ox::Attr;
using ox::Type;

namespace {

// c<t> of every position [B*T, C] from chars [B, T, L] and char_lengths [B, T].
std::string char_features(ox::Graph& g, TaggerImpl& model) {
  const auto& o = model.options;
  const auto ids = g.node("Flatten", {"chars"}, {Attr("axis", 2)});                // [B*T, L]
  const auto len = g.node("Reshape", {"char_lengths", g.ints({-1})});              // [B*T]
  const auto e = g.node("Gather", {g.constant(model.chars->weight, "E_c"), ids});  // [W, L, Ec]
  if (o.char_features() == CharFeatures::kCNN) {
    const int64_t k = o.char_kernel();
    // Letters past each word's length: zero embeddings into the convolution, and no part in
    // the max (-inf), as in the model.
    const auto L = g.node(
        "Squeeze", {g.node("Shape", {ids}, {Attr("start", 1), Attr("end", 2)}), g.ints({0})});
    const auto l = g.node("Range", {g.int_scalar(0), L, g.int_scalar(1)});  // [L]
    const auto pad = g.node("GreaterOrEqual", {g.node("Unsqueeze", {l, g.ints({0})}),
                                               g.node("Unsqueeze", {len, g.ints({1})})});  // [W, L]
    const auto e0 = g.node("Where", {g.node("Unsqueeze", {pad, g.ints({2})}), g.scalar(0.f), e});
    const auto h = g.node(
        "Conv",
        {g.node("Transpose", {e0}, {Attr("perm", {0, 2, 1})}),
         g.constant(model.char_cnn->weight, "W_cnn"), g.constant(model.char_cnn->bias, "b_cnn")},
        {Attr("kernel_shape", std::vector<int64_t>{k}),
         Attr("pads", std::vector<int64_t>{k / 2, k / 2})});  // [W, C, L]
    const auto masked =
        g.node("Where", {g.node("Unsqueeze", {pad, g.ints({1})}), g.scalar(-INFINITY), h});
    return g.node("ReduceMax", {masked},
                  {Attr("axes", std::vector<int64_t>{2}), Attr("keepdims", 0)});  // [W, C]
  }
  // The char BiRNN's final states; a padding position (length 0) reads one letter, and is
  // zeroed with the rest of the padding afterwards.
  const auto len1 = g.node("Max", {len, g.ints({1})});
  const auto r =
      ox::add_rnn(g, *model.char_rnn, g.node("Transpose", {e}, {Attr("perm", {1, 0, 2})}), len1);
  // h_n [2, W, Hc] -> [W, 2 Hc], forward then backward
  return g.node("Reshape",
                {g.node("Transpose", {r.h_n}, {Attr("perm", {1, 0, 2})}), g.ints({0, -1})});
}

}  // namespace

void export_onnx(Loaded& m, const std::string& path) {
  auto& model = *m.model;
  const auto& o = model.options;
  ox::check_exportable(*model.rnn, "[model] cell");
  if (o.char_features() == CharFeatures::kRNN)
    ox::check_exportable(*model.char_rnn, "[model] char_cell");
  torch::NoGradGuard no_grad;
  const std::string arch = architecture(m.config, m.lexicon);
  ox::Graph g("rnnkit_ner", "rnnkit-ner tagger: " + arch);
  const bool chars = o.char_features() != CharFeatures::kNone, cased = o.casing_size() > 0;
  auto input = [&](const std::string& name, const std::vector<ox::Dim>& dims,
                   const std::string& doc) { g.input(name, Type::kInt64, dims, doc); };
  input("words", {"batch", "steps"}, "word ids (tokenizer.words), 0 past each length");
  input("lengths", {"batch"}, "the number of words of each sentence, >= 1");
  if (cased) {
    input("casing", {"batch", "steps"},
          "the casing class of each word (casing_classes), 0 past each length");
  }
  if (chars) {
    input("chars", {"batch", "steps", "letters"},
          "character ids of each word (at most max_word_length), padded with 0 to any width");
    input("char_lengths", {"batch", "steps"},
          "the number of characters of each word (at least 1), 0 past each sentence's length");
  }
  std::vector<std::string> parts{
      g.node("Gather", {g.constant(model.words->weight, "E_w"), "words"})};  // [B, T, Ew]
  if (chars) {
    const auto c = char_features(g, model);  // [B*T, C]
    const auto shape =
        g.node("Concat", {g.node("Shape", {"words"}), g.ints({-1})}, {Attr("axis", 0)});
    // Zero past each sentence's length, as the model leaves it.
    const auto real =
        g.node("Transpose", {ox::step_mask(g, g.node("Transpose", {"words"}), "lengths")},
               {Attr("perm", {1, 0, 2})});  // [B, T, 1]
    parts.push_back(g.node("Where", {real, g.node("Reshape", {c, shape}), g.scalar(0.f)}));
  }
  if (cased) parts.push_back(g.node("Gather", {g.constant(model.casing->weight, "E_k"), "casing"}));
  const auto x = parts.size() == 1 ? parts[0] : g.node("Concat", parts, {Attr("axis", 2)});
  const auto r =
      ox::add_rnn(g, *model.rnn, g.node("Transpose", {x}, {Attr("perm", {1, 0, 2})}), "lengths");
  const auto a = g.node("Transpose", {r.output}, {Attr("perm", {1, 0, 2})});  // [B, T, 2H]
  const auto s = g.node("Add", {g.node("MatMul", {a, g.constant(model.output->weight.t(), "W_y")}),
                                g.constant(model.output->bias, "b_y")});
  const auto K = static_cast<int64_t>(m.lexicon.tags.size());
  g.output(s, "emissions", Type::kFloat, {"batch", "steps", K},
           "the score of each tag at each word (softmax decoder: their argmax)");
  const bool crf = o.decoder() == Decoder::kCRF;
  if (crf) {
    auto& c = *model.crf;
    g.output(g.constant(c.masked_transitions(), "A"), "transitions", Type::kFloat, {K, K},
             "A[from, to], -inf where the scheme forbids the transition");
    g.output(g.constant(c.masked_start(), "s_start"), "start_transitions", Type::kFloat, {K},
             "the score of starting with each tag");
    g.output(g.constant(c.masked_end(), "s_end"), "end_transitions", Type::kFloat, {K},
             "the score of ending with each tag");
  }

  const auto& lx = m.lexicon;
  train::Json meta;
  meta["app"] = "ner";
  meta["architecture"] = arch;
  meta["decoder"] = crf ? "crf" : "softmax";
  meta["tags"] = lx.tags;
  meta["tag_scheme"] = data::to_string(lx.internal_scheme);
  meta["input_scheme"] = data::to_string(lx.input_scheme);
  meta["tokenizer"] = {
      {"split", "whitespace (one sentence per line) or one token per line (CoNLL)"},
      {"lowercase", lx.lowercase},
      {"normalize_digits", lx.normalize_digits},
      {"word_key",
       "the word, lowercased (each code point's simple lowercase) if lowercase, every decimal "
       "digit (Unicode Nd) as 0 if normalize_digits; a key missing from words falls back to "
       "the lowercased key, then to <unk> (id 1)"},
      {"max_word_length", lx.max_word_length},
      {"chars",
       "the word's code points, as they are (no lowercasing), each looked up in chars "
       "(<unk>, id 1, if missing)"},
      {"padding_id", data::Vocab::kPad},
      {"unknown_id", data::Vocab::kUnk}};
  meta["casing_classes"] = {"<pad>",
                            "numeric: every code point a digit",
                            "mainly numeric: more than half digits",
                            "all lower: lower case letters, no upper case",
                            "all upper: upper case letters, no lower case",
                            "initial upper: the first code point upper case",
                            "contains digit",
                            "other"};
  meta["words"] = ox::tokens_of(lx.words);
  if (chars) meta["chars"] = ox::tokens_of(lx.chars);
  ox::save(g, meta, path);
}

int export_main(int argc, char** argv) {
  return ox::export_command("rnnkit-ner", argc, argv,
                            [](const std::string& checkpoint, const std::string& output) {
                              auto m = load_model(checkpoint, torch::kCPU);
                              export_onnx(m, output);
                            });
}

}  // namespace rnnkit::ner

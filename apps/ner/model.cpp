#include "model.h"

#include <rnnkit/data/text.h>

#include <limits>
#include <ostream>
#include <stdexcept>

#include <c10/util/Exception.h>
#include <torch/nn/functional/loss.h>

namespace rnnkit::ner {

using torch::Tensor;
namespace F = torch::nn::functional;

CharFeatures parse_char_features(const std::string& name) {
  if (name == "none") return CharFeatures::kNone;
  if (name == "rnn") return CharFeatures::kRNN;
  if (name == "cnn") return CharFeatures::kCNN;
  throw std::invalid_argument("unknown char features '" + name + "'; expected none, rnn or cnn");
}

Decoder parse_decoder(const std::string& name) {
  if (name == "softmax") return Decoder::kSoftmax;
  if (name == "crf") return Decoder::kCRF;
  throw std::invalid_argument("unknown decoder '" + name + "'; expected softmax or crf");
}

int64_t casing(const std::string& word) {
  // Classes over code points (utf8proc's categories), so "ΑΘΗΝΑ" is all upper and "Łódź" starts
  // upper, as "PARIS" and "Paris" do.
  const auto c = data::case_counts(word);
  if (c.total > 0 && c.digits == c.total) return kNumeric;
  if (c.total > 0 && 2 * c.digits > c.total) return kMainlyNumeric;
  if (c.lower > 0 && c.upper == 0) return kAllLower;
  if (c.upper > 0 && c.lower == 0) return kAllUpper;
  if (c.first_upper) return kInitialUpper;
  if (c.digits > 0) return kContainsDigit;
  return kOther;
}

TaggerBatch TaggerBatch::to_device(const torch::Device& d) const {
  auto mv = [&](const Tensor& t) { return t.defined() ? t.to(d) : t; };
  return {mv(words), mv(casing), lengths, mv(chars), mv(char_lengths), mv(positions), mv(tags)};
}

TaggerImpl::TaggerImpl(TaggerOptions options_) : options(std::move(options_)) { reset(); }

void TaggerImpl::reset() {
  auto& o = options;
  TORCH_CHECK(o.num_tags() >= 2, "Tagger: expected at least 2 tags, got ", o.num_tags());
  TORCH_CHECK(o.char_features() == CharFeatures::kNone || o.num_chars() > 0,
              "Tagger: char features need a character vocabulary, got num_chars ", o.num_chars());
  words = register_module("words", torch::nn::Embedding(o.vocab_size(), o.word_embedding_size()));
  int64_t input = o.word_embedding_size();
  if (o.char_features() != CharFeatures::kNone) {
    chars = register_module("chars", torch::nn::Embedding(o.num_chars(), o.char_embedding_size()));
    if (o.char_features() == CharFeatures::kCNN) {
      TORCH_CHECK(o.char_kernel() % 2 == 1, "Tagger: expected an odd char_kernel, got ",
                  o.char_kernel());
      char_cnn = register_module(
          "char_cnn",
          torch::nn::Conv1d(torch::nn::Conv1dOptions(o.char_embedding_size(), o.char_hidden_size(),
                                                     o.char_kernel())
                                .padding(o.char_kernel() / 2)));
      input += o.char_hidden_size();
    } else {
      char_rnn = register_module(
          "char_rnn", RNN(RNNOptions(o.char_cell(), o.char_embedding_size(), o.char_hidden_size())
                              .bidirectional(true)
                              .batch_first(true)
                              .init(o.rnn().init())));
      input += 2 * o.char_hidden_size();
    }
  }
  if (o.casing_size() > 0) {
    casing = register_module("casing", torch::nn::Embedding(kNumCasings, o.casing_size()));
    input += o.casing_size();
  }
  o.rnn().input_size(input).bidirectional(true).batch_first(true);
  rnn = register_module("rnn", RNN(o.rnn()));
  output = register_module("output", torch::nn::Linear(2 * o.rnn().hidden_size(), o.num_tags()));
  if (o.decoder() == Decoder::kCRF) crf = register_module("crf", CRF(o.num_tags()));
}

void TaggerImpl::pretty_print(std::ostream& os) const {
  static const char* char_names[] = {"none", "rnn", "cnn"};
  os << "rnnkit::ner::Tagger(vocab_size=" << options.vocab_size() << ", tags=" << options.num_tags()
     << ", cell=" << options.rnn().cell() << ", hidden_size=" << options.rnn().hidden_size()
     << ", num_layers=" << options.rnn().num_layers()
     << ", char_features=" << char_names[static_cast<int>(options.char_features())]
     << ", casing_size=" << options.casing_size()
     << ", decoder=" << (options.decoder() == Decoder::kCRF ? "crf" : "softmax") << ")";
}

Tensor TaggerImpl::char_features(const TaggerBatch& b) {
  TORCH_CHECK(
      b.chars.dim() == 2 && b.char_lengths.dim() == 1 && b.chars.size(0) == b.char_lengths.size(0),
      "Tagger: expected chars [W, L] and char_lengths [W], got ", b.chars.sizes(), " and ",
      b.char_lengths.sizes());
  auto e = torch::dropout(chars->forward(b.chars), options.rnn().dropout(),
                          is_training());  // [W, L, Ec]
  if (options.char_features() == CharFeatures::kCNN) {
    const int64_t L = e.size(1);
    const auto len = b.char_lengths.to(e.device());
    const auto pad = torch::arange(L, len.options()).unsqueeze(0) >= len.unsqueeze(1);  // [W, L]
    // Past a word's end the window sees zeros, as the convolution's own padding gives the
    // batch's longest word: a word's features do not depend on the words it is batched with.
    e = e.masked_fill(pad.unsqueeze(2), 0);
    // Cast back by hand under autocast: the features join fp32 ones.
    const auto h = char_cnn->forward(e.transpose(1, 2)).to(e.scalar_type());  // [W, C, L]
    return std::get<0>(
        h.masked_fill(pad.unsqueeze(1), -std::numeric_limits<double>::infinity()).max(2));
  }
  const auto out = char_rnn->forward(e, b.char_lengths.cpu());
  return torch::cat({out.states[0].a, out.states[1].a}, 1);  // [W, 2 Hc]
}

Tensor TaggerImpl::forward(const TaggerBatch& b) {
  TORCH_CHECK(b.words.dim() == 2 && b.words.scalar_type() == torch::kLong,
              "Tagger: expected words [B, T] of int64, got ", b.words.sizes(), " ",
              b.words.scalar_type());
  const int64_t B = b.words.size(0), T = b.words.size(1);
  std::vector<Tensor> parts{words->forward(b.words)};
  if (options.char_features() != CharFeatures::kNone) {
    const auto c = char_features(b);  // [W, C]
    TORCH_CHECK(b.positions.numel() == c.size(0), "Tagger: expected ", c.size(0),
                " positions, got ", b.positions.numel());
    parts.push_back(torch::zeros({B * T, c.size(1)}, c.options())
                        .index_copy(0, b.positions, c)
                        .view({B, T, -1}));
  }
  if (options.casing_size() > 0) parts.push_back(casing->forward(b.casing));
  const auto x = torch::dropout(torch::cat(parts, 2), options.rnn().dropout(), is_training());
  const auto a = rnn->forward(x, b.lengths.cpu()).output;  // [B, T, 2H]
  // The emissions in fp32 under autocast (cast by hand): the CRF and the softmax stay fp32.
  return output->forward(torch::dropout(a, options.rnn().dropout(), is_training()))
      .to(a.scalar_type());
}

Tensor TaggerImpl::loss(const TaggerBatch& b) {
  TORCH_CHECK(b.tags.defined() && b.tags.sizes() == b.words.sizes(),
              "Tagger::loss: expected tags of the words' shape ", b.words.sizes(), ", got ",
              b.tags.defined() ? b.tags.sizes() : torch::IntArrayRef{});
  const auto s = forward(b);
  if (options.decoder() == Decoder::kCRF) return crf->nll(s, b.tags, b.lengths).mean();
  const int64_t B = s.size(0), T = s.size(1);
  const auto len = b.lengths.to(s.device());
  const auto real =
      (torch::arange(T, len.options()).unsqueeze(0) < len.unsqueeze(1)).to(s.scalar_type());
  const auto ce = F::cross_entropy(s.reshape({B * T, -1}), b.tags.reshape({-1}),
                                   F::CrossEntropyFuncOptions().reduction(torch::kNone));
  return (ce.view({B, T}) * real).sum() / B;
}

std::vector<std::vector<int64_t>> TaggerImpl::decode(const TaggerBatch& b) {
  torch::NoGradGuard no_grad;
  const auto s = forward(b);
  if (options.decoder() == Decoder::kCRF) return crf->decode(s, b.lengths);
  const auto best = s.argmax(2).cpu().contiguous();
  const auto len = b.lengths.cpu().contiguous();
  std::vector<std::vector<int64_t>> out;
  for (int64_t i = 0; i < best.size(0); ++i) {
    const auto* p = best[i].data_ptr<int64_t>();
    out.emplace_back(p, p + len[i].item<int64_t>());
  }
  return out;
}

}  // namespace rnnkit::ner

#include "model.h"

#include <ostream>
#include <stdexcept>

#include <c10/util/Exception.h>
#include <torch/nn/functional/loss.h>

namespace rnnkit::sentiment {

Pooling parse_pooling(const std::string& name) {
  if (name == "last") return Pooling::kLast;
  if (name == "mean") return Pooling::kMean;
  if (name == "max") return Pooling::kMax;
  throw std::invalid_argument("unknown pooling '" + name + "'; expected last, mean or max");
}

ClassifierImpl::ClassifierImpl(ClassifierOptions options_) : options(std::move(options_)) {
  reset();
}

void ClassifierImpl::reset() {
  auto& o = options;
  TORCH_CHECK(o.num_classes() >= 2, "Classifier: expected at least 2 classes, got ",
              o.num_classes());
  embedding =
      register_module("embedding", torch::nn::Embedding(o.vocab_size(), o.embedding_size()));
  o.rnn().input_size(o.embedding_size()).batch_first(true);
  rnn = register_module("rnn", RNN(o.rnn()));
  const int64_t K = o.rnn().bidirectional() ? 2 : 1;
  output = register_module("output", torch::nn::Linear(K * o.rnn().hidden_size(), o.num_classes()));
}

void ClassifierImpl::pretty_print(std::ostream& os) const {
  static const char* pools[] = {"last", "mean", "max"};
  os << "rnnkit::sentiment::Classifier(vocab_size=" << options.vocab_size()
     << ", classes=" << options.num_classes() << ", cell=" << options.rnn().cell()
     << ", hidden_size=" << options.rnn().hidden_size()
     << ", num_layers=" << options.rnn().num_layers()
     << ", bidirectional=" << (options.rnn().bidirectional() ? "true" : "false")
     << ", pooling=" << pools[static_cast<int>(options.pooling())] << ")";
}

torch::Tensor ClassifierImpl::summarize(const RNNOutput& out, const torch::Tensor& lengths) const {
  const int64_t L = options.rnn().num_layers(), K = options.rnn().bidirectional() ? 2 : 1;
  switch (options.pooling()) {
    case Pooling::kLast: {
      // Forward: the state at the last real token. Backward: its final state, reached at the
      // first token.
      if (K == 1) return out.states[L - 1].a;
      return torch::cat({out.states[(L - 1) * 2].a, out.states[(L - 1) * 2 + 1].a}, 1);
    }
    case Pooling::kMean: {
      // The output is zero past each length, so a plain sum counts the real steps only.
      const auto len = lengths.to(out.output.device()).to(out.output.scalar_type()).unsqueeze(1);
      return out.output.sum(1) / len;
    }
    case Pooling::kMax: {
      const int64_t T = out.output.size(1);
      const auto t = torch::arange(T, lengths.options().device(out.output.device()));
      const auto pad =
          (t.unsqueeze(0) >= lengths.to(out.output.device()).unsqueeze(1)).unsqueeze(2);
      return std::get<0>(out.output.masked_fill(pad, -INFINITY).max(1));
    }
  }
  return {};
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& tokens, const torch::Tensor& lengths) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == torch::kLong,
              "Classifier: expected tokens [B, T] of int64, got ", tokens.sizes(), " ",
              tokens.scalar_type());
  const auto e =
      torch::dropout(embedding->forward(tokens), options.embedding_dropout(), is_training());
  const auto out = rnn->forward(e, lengths);
  const auto s = torch::dropout(summarize(out, lengths), options.rnn().dropout(), is_training());
  return output->forward(s).to(s.scalar_type());  // fp32 logits under autocast, by hand
}

BiLMImpl::BiLMImpl(const Classifier& classifier, int64_t vocab_size)
    : options_(classifier->options) {
  TORCH_CHECK(!(options_.rnn().bidirectional() && options_.rnn().num_layers() > 1),
              "BiLM: a bidirectional language model of more than one layer would see the word it "
              "predicts; expected num_layers = 1 or one direction, got ",
              options_.rnn().num_layers(), " bidirectional layers");
  embedding = register_module("embedding", classifier->embedding);
  rnn = register_module("rnn", classifier->rnn);
  const int64_t H = options_.rnn().hidden_size();
  forward_head = register_module("forward_head", torch::nn::Linear(H, vocab_size));
  if (options_.rnn().bidirectional())
    backward_head = register_module("backward_head", torch::nn::Linear(H, vocab_size));
}

BiLMImpl::Loss BiLMImpl::loss(const torch::Tensor& tokens, const torch::Tensor& lengths) {
  namespace F = torch::nn::functional;
  static constexpr int64_t kPad = 0;
  const int64_t T = tokens.size(1), H = options_.rnn().hidden_size();
  const auto e =
      torch::dropout(embedding->forward(tokens), options_.embedding_dropout(), is_training());
  const auto a =
      torch::dropout(rnn->forward(e, lengths).output, options_.rnn().dropout(), is_training());
  if (T < 2) return {a.sum() * 0, 0};  // one-word texts: nothing to predict
  const auto ce = [](torch::nn::Linear& head, const torch::Tensor& h, const torch::Tensor& target) {
    const auto logits = head->forward(h).to(h.scalar_type());  // fp32 under autocast
    return F::cross_entropy(logits.reshape({-1, logits.size(-1)}), target.reshape(-1),
                            F::CrossEntropyFuncOptions().ignore_index(kPad).reduction(torch::kSum));
  };
  const auto next = tokens.narrow(1, 1, T - 1);  // padding past each length: ignored
  Loss l{ce(forward_head, a.narrow(2, 0, H).narrow(1, 0, T - 1), next),
         (next != kPad).sum().item<int64_t>()};
  if (options_.rnn().bidirectional()) {
    // a←<t> for t = 2..T predicts x<t-1>, where t is a real step.
    const auto t = torch::arange(1, T, tokens.options());
    const auto real = t.unsqueeze(0) < lengths.to(tokens.device()).unsqueeze(1);
    const auto previous = tokens.narrow(1, 0, T - 1).masked_fill(real.logical_not(), kPad);
    l.sum = l.sum + ce(backward_head, a.narrow(2, H, H).narrow(1, 1, T - 1), previous);
    l.count += real.sum().item<int64_t>();
  }
  return l;
}

}  // namespace rnnkit::sentiment

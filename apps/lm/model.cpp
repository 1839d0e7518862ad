#include "model.h"

#include <ostream>

#include <c10/util/Exception.h>
#include <torch/nn/functional/dropout.h>

namespace rnnkit::lm {

LanguageModelImpl::LanguageModelImpl(LanguageModelOptions options_) : options(std::move(options_)) {
  reset();
}

void LanguageModelImpl::reset() {
  auto& o = options;
  const int64_t H = o.rnn().hidden_size();
  TORCH_CHECK(o.vocab_size() > 0, "LanguageModel: expected vocab_size > 0, got ", o.vocab_size());
  TORCH_CHECK(!o.tie_weights() || o.embedding_size() == H,
              "LanguageModel: tie_weights needs embedding_size == hidden_size, got ",
              o.embedding_size(), " and ", H);
  o.rnn().input_size(o.embedding_size() > 0 ? o.embedding_size() : o.vocab_size());
  if (o.embedding_size() > 0) {
    embedding =
        register_module("embedding", torch::nn::Embedding(o.vocab_size(), o.embedding_size()));
    torch::NoGradGuard g;
    embedding->weight.uniform_(-0.1, 0.1);
  } else {
    embedding = nullptr;
  }
  rnn = register_module("rnn", RNN(o.rnn()));
  // Tied weights: the embedding matrix [V, E = H] is the softmax matrix; nothing more to register.
  W_y = o.tie_weights() ? embedding->weight
                        : register_parameter("W_y", torch::empty({o.vocab_size(), H}));
  b_y = register_parameter("b_y", torch::zeros({o.vocab_size()}));
  if (!o.tie_weights()) {
    torch::NoGradGuard g;
    W_y.uniform_(-0.1, 0.1);
  }
}

void LanguageModelImpl::pretty_print(std::ostream& os) const {
  os << "rnnkit::lm::LanguageModel(vocab_size=" << options.vocab_size()
     << ", embedding_size=" << options.embedding_size() << ", cell=" << options.rnn().cell()
     << ", hidden_size=" << options.rnn().hidden_size()
     << ", num_layers=" << options.rnn().num_layers()
     << ", tie_weights=" << (options.tie_weights() ? "true" : "false") << ")";
}

torch::Tensor LanguageModelImpl::drop(const torch::Tensor& x, double p) const {
  return options.rnn().variational_dropout() ? variational_dropout(x, p, is_training())
                                             : torch::dropout(x, p, is_training());
}

LMOutput LanguageModelImpl::forward(const torch::Tensor& tokens, const std::vector<State>& states,
                                    const torch::Tensor& lengths) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == torch::kLong,
              "LanguageModel: expected tokens [T, B] of int64, got ", tokens.sizes(), " ",
              tokens.scalar_type());
  torch::Tensor x;
  if (embedding) {
    x = drop(embedding->forward(tokens), options.embedding_dropout());
  } else {
    x = torch::one_hot(tokens, options.vocab_size()).to(b_y.scalar_type());
  }
  auto out = rnn->forward(x, lengths, states);
  const auto h = drop(out.output, options.rnn().dropout());
  // Under autocast (train.precision) the product runs in bf16; the logits come back in fp32 by
  // hand, so that the softmax's log-sum-exp is fp32 (autocast leaves log_softmax in bf16).
  return {torch::linear(h, W_y, b_y).to(h.scalar_type()), std::move(out.states)};
}

}  // namespace rnnkit::lm

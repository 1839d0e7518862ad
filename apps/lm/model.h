#pragma once
// The recurrent language model: embeddings (or one-hot inputs), an rnnkit::RNN, and a linear
// softmax over the vocabulary, optionally tied to the embeddings.
//
//     e<t> = dropout_e(E[x<t>])        (or one_hot(x<t>)); variational: one mask for all t
//     a<t> = RNN(e<1..t>)              any registered cell, L layers
//     ŷ<t> = softmax(W_y dropout(a<t>) + b_y)
//
// Shapes: T time steps, B batch, V vocabulary, E embedding size, H hidden size.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include <rnnkit/compat.h>
#include <rnnkit/registry.h>
#include <rnnkit/rnn.h>

namespace rnnkit::lm {

struct LanguageModelOptions {
  LanguageModelOptions(int64_t vocab_size, RNNOptions rnn)
      : vocab_size_(vocab_size), rnn_(std::move(rnn)) {}
  TORCH_ARG(int64_t, vocab_size);
  /// The recurrent network, whole. The model sets its input_size (embedding_size, or vocab_size
  /// for one-hot inputs). Its dropout also acts before the softmax, and variational_dropout
  /// makes that and embedding_dropout one mask per sequence for all time steps
  /// (rnnkit::variational_dropout), as Gal & Ghahramani 2016 and Merity et al. 2017 drop the
  /// inputs, outputs and layer-to-layer connections; false: a new mask at every step.
  TORCH_ARG(RNNOptions, rnn);
  TORCH_ARG(int64_t, embedding_size) = 0;      ///< 0: one-hot inputs (tiny vocabularies)
  TORCH_ARG(double, embedding_dropout) = 0.0;  ///< on the embeddings
  TORCH_ARG(bool, tie_weights) = false;        ///< W_y = E (needs embedding_size == hidden_size)
};

struct LMOutput {
  torch::Tensor logits;       ///< [T, B, V]
  std::vector<State> states;  ///< per layer, to carry into the next window
};

class LanguageModelImpl : public torch::nn::Cloneable<LanguageModelImpl> {
 public:
  explicit LanguageModelImpl(LanguageModelOptions options);
  void reset() override;
  void pretty_print(std::ostream& os) const override;

  /// tokens [T, B] int64; states from the previous window (or empty); lengths [B] (optional).
  LMOutput forward(const torch::Tensor& tokens, const std::vector<State>& states = {},
                   const torch::Tensor& lengths = {});

  /// Dropout of a [T, B, D] sequence as options say (per step, or one mask per sequence).
  torch::Tensor drop(const torch::Tensor& x, double p) const;

  LanguageModelOptions options;
  torch::nn::Embedding embedding{nullptr};
  RNN rnn{nullptr};
  /// The softmax layer: W_y [V, H] (the embedding matrix itself when tied) and b_y [V].
  torch::Tensor W_y, b_y;
};
TORCH_MODULE(LanguageModel);

}  // namespace rnnkit::lm

#pragma once
// The many-to-one classifier: embeddings, a stacked RNN (one direction or two, any cell), a
// summary of the sequence, dropout, a linear layer; softmax in the loss.
//
//     e<t> = dropout_e(E[x<t>])
//     a<t> = RNN(e<1..T>)                           per layer and direction
//     s    = a→<T_b> (and a←<1>)                    "last": the course's many-to-one picture
//          | mean_t a<t> | max_t a<t>               over the real steps only
//     ŷ    = softmax(W_y dropout(s) + b_y)
//
// Shapes: B batch, T steps, V vocabulary, E embedding size, H hidden size, K directions,
// C classes.
#include <string>
#include <utility>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <rnnkit/compat.h>
#include <rnnkit/registry.h>
#include <rnnkit/rnn.h>

namespace rnnkit::sentiment {

enum class Pooling { kLast, kMean, kMax };
Pooling parse_pooling(const std::string& name);  ///< last, mean, max

struct ClassifierOptions {
  ClassifierOptions(int64_t vocab_size, int64_t num_classes, RNNOptions rnn)
      : vocab_size_(vocab_size), num_classes_(num_classes), rnn_(std::move(rnn)) {}
  TORCH_ARG(int64_t, vocab_size);
  TORCH_ARG(int64_t, num_classes);
  /// The recurrent network, whole; the model sets input_size (embedding_size) and batch_first.
  /// Its dropout also acts on the summary before the output layer.
  TORCH_ARG(RNNOptions, rnn);
  TORCH_ARG(int64_t, embedding_size) = 100;
  TORCH_ARG(double, embedding_dropout) = 0.0;
  TORCH_ARG(Pooling, pooling) = Pooling::kLast;
};

class ClassifierImpl : public torch::nn::Cloneable<ClassifierImpl> {
 public:
  explicit ClassifierImpl(ClassifierOptions options);
  void reset() override;
  void pretty_print(std::ostream& os) const override;

  /// tokens [B, T] int64 (padded), lengths [B] -> logits [B, C].
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& lengths);
  /// The sequence summary s [B, K*H] (before dropout and the output layer).
  torch::Tensor summarize(const RNNOutput& out, const torch::Tensor& lengths) const;

  ClassifierOptions options;
  torch::nn::Embedding embedding{nullptr};
  RNN rnn{nullptr};
  torch::nn::Linear output{nullptr};
};
TORCH_MODULE(Classifier);

/// Pretraining: the classifier's embeddings and RNN (shared, not copied) under a next-word
/// softmax per direction, a language model of the training texts (Dai & Le 2015). The forward
/// pass at step t has read x<1..t> and predicts x<t+1>; the backward pass has read x<t..T> and
/// predicts x<t-1>. Dropout as in the classifier: on the embeddings, and on a<t> before the heads.
///
///     p→(· | a→<t>) = softmax(W→ a→<t> + b→)        p←(· | a←<t>) = softmax(W← a←<t> + b←)
///     loss = -(Σ_t log p→(x<t+1>) + Σ_t log p←(x<t-1>))     over real steps, per text
///
/// More than one bidirectional layer would leak: layer 2's forward pass reads layer 1's backward
/// pass, which has read the word to predict. The constructor refuses it.
/// A plain Module, not Cloneable: it borrows the classifier's submodules instead of owning them.
class BiLMImpl : public torch::nn::Module {
 public:
  BiLMImpl(const Classifier& classifier, int64_t vocab_size);

  /// The summed cross-entropy of every prediction and how many there are.
  struct Loss {
    torch::Tensor sum;
    int64_t count = 0;
  };
  /// tokens [B, T] int64 padded with 0, lengths [B] (on the CPU).
  Loss loss(const torch::Tensor& tokens, const torch::Tensor& lengths);

  torch::nn::Embedding embedding{nullptr};
  RNN rnn{nullptr};
  torch::nn::Linear forward_head{nullptr}, backward_head{nullptr};

 private:
  ClassifierOptions options_;
};
TORCH_MODULE(BiLM);

}  // namespace rnnkit::sentiment

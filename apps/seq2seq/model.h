#pragma once
// The encoder-decoder with attention (many-to-many, Tx ≠ Ty; docs/seq2seq.md):
//
//     x̂<t'> = dropout(E_x[x<t'>])                       source embeddings
//     h<t'>, final = RNN(x̂<1..Tx>)                       any registered cell, deep, bidirectional
//     s<0> = Bridge(final)                                tanh of a linear map, per decoder layer
//     h̃<t> = AttentionDecoder(E_y[y<t-1>], s<t-1>, h)    rnnkit/decoder.h (additive, dot, general,
//                                                         none; input feeding)
//     ŷ<t> = softmax(W_y dropout(h̃<t>) + b_y)            W_y = E_y with tie_embeddings
//
// Shapes: S source positions, T target steps, B batch, E embedding size, H hidden size, V
// target vocabulary.
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include <rnnkit/decoder.h>
#include <rnnkit/rnn.h>

#include "search.h"

namespace rnnkit::seq2seq {

struct Seq2SeqOptions {
  Seq2SeqOptions(int64_t source_vocab, int64_t target_vocab, RNNOptions rnn)
      : source_vocab_(source_vocab), target_vocab_(target_vocab), rnn_(std::move(rnn)) {}
  TORCH_ARG(int64_t, source_vocab);
  TORCH_ARG(int64_t, target_vocab);
  /// The cell, hidden size (the encoder's per direction and the decoder's), layers and dropout
  /// of both recurrent networks, whole. The model sets input sizes and directions.
  TORCH_ARG(RNNOptions, rnn);
  TORCH_ARG(int64_t, embedding_size) = 256;
  TORCH_ARG(bool, bidirectional_encoder) = true;
  TORCH_ARG(std::string, attention) = "additive";  ///< additive, dot, general, none
  TORCH_ARG(bool, input_feeding) = false;
  TORCH_ARG(bool, tie_embeddings) = false;  ///< W_y = E_y (needs embedding_size == hidden_size)
  TORCH_ARG(double, embedding_dropout) = 0.0;
};

/// A batch of source sentences as the decoder reads them.
struct Encoded {
  AttentionMemory memory;
  DecoderState state;
};

class Seq2SeqImpl : public torch::nn::Cloneable<Seq2SeqImpl> {
 public:
  explicit Seq2SeqImpl(Seq2SeqOptions options);
  void reset() override;
  void pretty_print(std::ostream& os) const override;

  /// source [S, B] int64 (padded with 0), lengths [B] (each ≥ 1).
  Encoded encode(const torch::Tensor& source, const torch::Tensor& lengths);
  /// Teacher forcing: target_in [T, B] (<bos> y<1..T-1>) -> logits [T, B, V].
  torch::Tensor forward(const torch::Tensor& source, const torch::Tensor& lengths,
                        const torch::Tensor& target_in);
  /// The output layer on h̃ [..., H] -> logits [..., V].
  torch::Tensor logits(const torch::Tensor& h) const;

  Seq2SeqOptions options;
  torch::nn::Embedding source_embedding{nullptr}, target_embedding{nullptr};
  RNN encoder{nullptr};
  Bridge bridge{nullptr};
  AttentionDecoder decoder{nullptr};
  torch::Tensor W_y, b_y;
};
TORCH_MODULE(Seq2Seq);

/// The model as search.h steps it: a batch of encoded sentences, one row per sentence (or beam).
class Seq2SeqStepper : public StepModel {
 public:
  Seq2SeqStepper(Seq2SeqImpl& model, Encoded encoded) : model_(model), e_(std::move(encoded)) {}
  torch::Tensor step(const torch::Tensor& last) override;
  void reorder(const torch::Tensor& index) override;
  torch::Tensor last_attention() const override { return attention_; }

 private:
  Seq2SeqImpl& model_;
  Encoded e_;
  torch::Tensor attention_;
};

}  // namespace rnnkit::seq2seq

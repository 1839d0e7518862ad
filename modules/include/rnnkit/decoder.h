#pragma once
// The decoder of an encoder-decoder (docs/equations.md, "Encoder-decoder"): any registered cell,
// stacked num_layers deep, one step at a time, reading the encoder's outputs through attention.
// The encoder is an rnnkit::RNN; a Bridge turns its final states into the decoder's first.
//
//   additive (Bahdanau):   c<t> = attend(s[L]<t-1>, h)                  context from the last state
//                          s<t> = cells([y<t>; c<t>], s<t-1>)
//                          h̃<t> = tanh(W_c [c<t>; s[L]<t>])
//   dot, general (Luong):  s<t> = cells([y<t>; h̃<t-1>], s<t-1>)          (h̃<t-1> with input
//   feeding)
//                          c<t> = attend(s[L]<t>, h)                    context from the new state
//                          h̃<t> = tanh(W_c [c<t>; s[L]<t>])
//   none (Sutskever, Cho): s<t> = cells(y<t>, s<t-1>),   h̃<t> = s[L]<t>
//
// h̃<t> is what the output layer reads. Between the layers, dropout (RNNOptions::dropout).
// Without input feeding the Luong and plain decoders do not feed anything of step t back into
// step t+1 but the cells' state, so teacher forcing runs them as one rnnkit::RNN over all steps
// (the cells' fast path) and attends to all steps at once; forward() takes that path, and
// step() is the plain path beside it (tests check that they agree).
//
// Shapes: T target steps, B batch, E input (embedding) size, H hidden size, Dh memory size, S
// source positions, L layers.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "rnnkit/attention.h"
#include "rnnkit/rnn.h"
#include "rnnkit/state.h"

namespace rnnkit {

struct DecoderOptions {
  /// rnn: the decoder's cell, hidden_size, num_layers, dropout; its input_size is E (the
  /// decoder adds the context's and the fed h̃'s widths itself). memory_size: Dh.
  DecoderOptions(RNNOptions rnn, int64_t memory_size)
      : rnn_(std::move(rnn)), memory_size_(memory_size) {}
  TORCH_ARG(RNNOptions, rnn);
  TORCH_ARG(int64_t, memory_size);
  /// "additive", "dot", "general" or "none".
  TORCH_ARG(std::string, attention) = "additive";
  /// Luong's input feeding: h̃<t-1> joins the first layer's input (dot and general only).
  TORCH_ARG(bool, input_feeding) = false;
};

/// What the decoder carries from step t-1 to step t.
struct DecoderState {
  std::vector<State> layers;  ///< s[l]<t-1>, one per layer
  torch::Tensor feed;         ///< h̃<t-1> [B, H] (input feeding; undefined: zeros)

  /// The state of the rows `index` [N] (beam search).
  DecoderState index_select(const torch::Tensor& index) const;
};

struct DecoderOutput {
  torch::Tensor output;   ///< h̃ [T, B, H] (or [B, H] for one step)
  torch::Tensor weights;  ///< α [T, B, S] (or [B, S]); undefined without attention
};

class AttentionDecoderImpl : public torch::nn::Cloneable<AttentionDecoderImpl> {
 public:
  explicit AttentionDecoderImpl(DecoderOptions options);
  void reset() override;
  void pretty_print(std::ostream& os) const override;

  /// The encoder's outputs h [S, B, Dh] and lengths [B] as the attention reads them (the source
  /// projection, once per sentence). Without attention: only the mask.
  AttentionMemory memory(const torch::Tensor& h, const torch::Tensor& lengths) const;
  /// One step (the plain path): y<t> [B, E] -> h̃<t> [B, H], α<t> [B, S]; updates `state`.
  DecoderOutput step(const torch::Tensor& y, DecoderState& state, const AttentionMemory& m);
  /// Teacher forcing over y [T, B, E] from `state` (the bridge's): the fast path where the
  /// equations allow it, steps otherwise.
  DecoderOutput forward(const torch::Tensor& y, DecoderState state, const AttentionMemory& m);
  /// Whether forward() runs all steps as one RNN (no context or h̃ fed back into the input).
  bool parallel_over_time() const;

  DecoderOptions options;
  RNN rnn{nullptr};                              ///< the cells (layer l: rnn->cell(l, 0))
  std::shared_ptr<AttentionImplBase> attention;  ///< null for "none"
  torch::Tensor W_c;                             ///< [H, Dh + H]; undefined for "none"
};
TORCH_MODULE(AttentionDecoder);

struct BridgeOptions {
  /// The encoder's final states (L_e layers × K directions of width H_e) to the decoder's
  /// (L_d layers of width H_d).
  BridgeOptions(int64_t encoder_layers, int64_t encoder_directions, int64_t encoder_hidden,
                int64_t decoder_layers, int64_t decoder_hidden)
      : encoder_layers_(encoder_layers),
        encoder_directions_(encoder_directions),
        encoder_hidden_(encoder_hidden),
        decoder_layers_(decoder_layers),
        decoder_hidden_(decoder_hidden) {}
  TORCH_ARG(int64_t, encoder_layers);
  TORCH_ARG(int64_t, encoder_directions);
  TORCH_ARG(int64_t, encoder_hidden);
  TORCH_ARG(int64_t, decoder_layers);
  TORCH_ARG(int64_t, decoder_hidden);
  /// Whether the decoder's cell carries c<t> (the LSTM): then c is bridged too.
  TORCH_ARG(bool, decoder_memory_cell) = false;
};

/// The decoder's first state from the encoder's last (the top decoder layers take the top
/// encoder layers; a deeper decoder's lowest layers share the encoder's first):
///   s[l]<0> = tanh(W_l [a→[l']<S>; a←[l']<1>] + b_l)
///   c[l]<0> = W_cl [c→[l']<S>; c←[l']<1>] + b_cl      (LSTM decoders; zeros if the encoder has no
///   c)
class BridgeImpl : public torch::nn::Cloneable<BridgeImpl> {
 public:
  explicit BridgeImpl(BridgeOptions options);
  void reset() override;
  void pretty_print(std::ostream& os) const override;
  /// The encoder's final states (RNNOutput::states, index l * K + d) -> one State per decoder
  /// layer.
  std::vector<State> forward(const std::vector<State>& encoder_states);
  /// Which encoder layer decoder layer l reads.
  int64_t source_layer(int64_t l) const;

  BridgeOptions options;
  std::vector<torch::Tensor> W, b, W_cell, b_cell;
};
TORCH_MODULE(Bridge);

}  // namespace rnnkit

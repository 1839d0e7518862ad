#pragma once
// RecurrentLayer: one layer in one direction (custom_lstms's LSTMLayer and ReverseLSTMLayer in
// one), unrolling any registered cell over a sequence. `Recurrent` is its older name.
//
// Input x is [T, B, D] (or [B, T, D] with batch_first). `lengths` [B] (int64, any order, on the
// CPU or on x's device) gives each sequence's real length; steps past it are padding:
//  - the state stops changing there, so the final state is the one at the last real step;
//  - the output there is zero.
// With reverse(true) the cell reads each sequence right to left starting at its last *real*
// token, and the output is put back in the original time order.
// Shapes: T time steps, B batch, D input size, H hidden size.
#include <memory>
#include <string>
#include <utility>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "rnnkit/cell.h"
#include "rnnkit/compat.h"
#include "rnnkit/init.h"
#include "rnnkit/registry.h"
#include "rnnkit/rnn_options.h"
#include "rnnkit/state.h"

namespace rnnkit {

/// One layer in one direction. The layer reads rnn()'s cell, input_size (this layer's input),
/// hidden_size, batch_first, recurrent_dropout, init, forget_bias and cell_options; the settings
/// about the stack (num_layers, bidirectional, dropout, variational_dropout,
/// concurrent_directions) are RNN's and the layer ignores them.
struct RecurrentOptions {
  explicit RecurrentOptions(RNNOptions rnn) : rnn_(std::move(rnn)) {}
  RecurrentOptions(std::string cell, int64_t input_size, int64_t hidden_size)
      : rnn_(std::move(cell), input_size, hidden_size) {}
  TORCH_ARG(RNNOptions, rnn);
  /// Read each sequence right to left (from its last real token).
  TORCH_ARG(bool, reverse) = false;
};

struct RecurrentOutput {
  torch::Tensor output;  ///< [T, B, H] (or [B, T, H]); zero past each sequence's length
  State state;           ///< the state at each sequence's last real step
};

/// Variational ("locked") dropout of a time-major sequence x [T, B, D]: one Bernoulli(1 - p)
/// mask per sequence and feature, [1, B, D], shared by every time step and scaled by 1 / (1 - p)
/// (Gal & Ghahramani 2016; Merity et al. 2017's LockedDropout). torch::dropout draws a new mask
/// at every step instead. Returns x itself when not training or p == 0.
torch::Tensor variational_dropout(const torch::Tensor& x, double p, bool training);

namespace detail {
/// Padding information for a time-major batch, validated and computed once per forward and
/// shared by every layer and direction.
struct SequenceMask {
  int64_t T = 0, B = 0;
  torch::Tensor lengths;                   ///< [B] int64 on the input's device
  torch::Tensor valid;                     ///< [T, B, 1] bool: step t is a real token of sequence b
  std::vector<torch::Tensor> valid_steps;  ///< valid unbound over time: [B, 1] each
  torch::Tensor reverse_index;             ///< [T, B] int64: t -> len-1-t for real steps, t past it
  bool empty() const { return !valid.defined(); }
};

/// Checks `lengths` against x [T, B, D] (time-major). Undefined lengths, or all equal to T,
/// give an empty mask (nothing to mask). `who` names the caller in error messages.
SequenceMask make_sequence_mask(const torch::Tensor& x, const torch::Tensor& lengths,
                                const char* who);

/// Checks x's rank and feature size and returns it time-major.
torch::Tensor to_time_major(const torch::Tensor& input, bool batch_first, int64_t input_size,
                            const char* who);

/// The variational dropout mask: Bernoulli(1 - p) / (1 - p), [B, H], with like's options.
torch::Tensor recurrent_dropout_mask(int64_t batch, int64_t hidden, double p,
                                     const torch::TensorOptions& like);
}  // namespace detail

class RecurrentLayerImpl : public torch::nn::Cloneable<RecurrentLayerImpl> {
 public:
  RecurrentLayerImpl(std::string cell, int64_t input_size, int64_t hidden_size)
      : RecurrentLayerImpl(RecurrentOptions(std::move(cell), input_size, hidden_size)) {}
  explicit RecurrentLayerImpl(RecurrentOptions options);

  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  RecurrentOutput forward(const torch::Tensor& input, const torch::Tensor& lengths = {},
                          const State& initial_state = {});

  /// The unrolling itself, for callers that already validated: x time-major [T, B, D].
  RecurrentOutput forward_time_major(const torch::Tensor& x, const detail::SequenceMask& mask,
                                     const State& initial_state);
  /// The variational dropout mask forward_time_major would draw for batch size B (undefined
  /// when not training or recurrent_dropout is 0), drawn now from the default generator.
  torch::Tensor draw_dropout_mask(int64_t B, const torch::TensorOptions& like);
  /// forward_time_major with a mask drawn before (draw_dropout_mask; undefined: none): the two
  /// directions of a layer run on other threads draw nothing there.
  RecurrentOutput forward_time_major(const torch::Tensor& x, const detail::SequenceMask& mask,
                                     const State& initial_state, const torch::Tensor& dropout_mask);

  RecurrentOptions options;
  std::shared_ptr<CellImplBase> cell;

 protected:
  // So that the layer works inside torch::nn::Sequential and AnyModule with input alone.
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())},
                           {2, torch::nn::AnyValue(State())})
};
TORCH_MODULE(RecurrentLayer);

/// The older names, kept so that code written against them builds.
using RecurrentImpl = RecurrentLayerImpl;
using Recurrent = RecurrentLayer;

}  // namespace rnnkit

#pragma once
// RNN: the user-facing recurrent network. Any registered cell, stacked num_layers deep, in one
// direction or two, with dropout between layers (docs/equations.md, "Deep (stacked) RNN"):
//
//     a[l]<t> = cell[l](a[l-1]<t>, a[l]<t-1>)        a[0]<t> = x<t>
//     bidirectional: a[l]<t> = [a→[l]<t>, a←[l]<t>]
//
//     rnnkit::RNN rnn(rnnkit::RNNOptions("lstm", 128, 256).num_layers(2).bidirectional(true)
//                         .dropout(0.3).batch_first(true));
//     auto out = rnn(x, lengths);   // out.output: [B, T, 512]; out.states[l * 2 + d]
//
// Dropout acts on the output of every layer but the last, and never on the recurrent
// connection; recurrent_dropout is the variational form on a<t-1> (one mask per sequence).
//
// The two directions of a bidirectional layer are independent until their outputs are joined,
// so with more than one thread they run concurrently, forward and backward (CPU autograd runs
// one graph's nodes one at a time on the thread that called backward, so a custom node over the
// pair starts one backward per direction, each on its own thread).
// Shapes: T time steps, B batch, D input size, H hidden size, L layers, K directions (1 or 2).
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "rnnkit/compat.h"
#include "rnnkit/init.h"
#include "rnnkit/recurrent.h"
#include "rnnkit/rnn_options.h"
#include "rnnkit/state.h"

namespace rnnkit {

struct RNNOutput {
  torch::Tensor output;       ///< [T, B, K*H] (or [B, T, K*H]); zero past each length
  std::vector<State> states;  ///< final state of layer l, direction d at index l * K + d

  /// Final activations stacked as torch::nn does: [L*K, B, H].
  torch::Tensor a_n() const;
  /// Final memory cells [L*K, B, H]; undefined for cells without one.
  torch::Tensor c_n() const;
};

/// Splits torch-style stacked initial states ([L*K, B, H]; c0 may be undefined) into States.
std::vector<State> unstack_states(const torch::Tensor& a0, const torch::Tensor& c0 = {});

class RNNImpl : public torch::nn::Cloneable<RNNImpl> {
 public:
  RNNImpl(std::string cell, int64_t input_size, int64_t hidden_size)
      : RNNImpl(RNNOptions(std::move(cell), input_size, hidden_size)) {}
  explicit RNNImpl(RNNOptions options);

  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  /// input [T, B, D] or [B, T, D]; lengths [B] int64 (optional); initial_state: L*K states
  /// (optional, index l * K + d).
  RNNOutput forward(const torch::Tensor& input, const torch::Tensor& lengths = {},
                    const std::vector<State>& initial_state = {});

  int64_t num_directions() const { return options.bidirectional() ? 2 : 1; }
  /// Whether forward() runs the two directions of a layer concurrently now.
  bool concurrent() const;
  /// The unrolled layer of layer l, direction d (0 forward, 1 reverse).
  RecurrentLayer& layer(int64_t l, int64_t d) { return layers_.at(l * num_directions() + d); }
  CellImplBase& cell(int64_t l, int64_t d) { return *layer(l, d)->cell; }

  RNNOptions options;

 protected:
  // So that the stack works inside torch::nn::Sequential and AnyModule with input alone.
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())},
                           {2, torch::nn::AnyValue(std::vector<State>())})

 private:
  std::vector<RecurrentLayer> layers_;
};
TORCH_MODULE(RNN);

}  // namespace rnnkit

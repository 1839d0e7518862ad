#pragma once
// RNNOptions: every recurrent setting, declared once. RNN takes it; a RecurrentLayer and a cell
// factory (CellSpec) get it whole, with input_size set to their own input; the apps' model
// options hold it whole (TORCH_ARG(RNNOptions, rnn)) and pass it through. Adding a recurrent
// setting is one field here (and, for the apps, one key in train::read_rnn_options).
#include <cstdint>
#include <string>
#include <utility>

#include <torch/arg.h>

#include "rnnkit/cell_options.h"
#include "rnnkit/compat.h"
#include "rnnkit/init.h"

namespace rnnkit {

struct RNNOptions {
  RNNOptions(std::string cell, int64_t input_size, int64_t hidden_size)
      : cell_(std::move(cell)), input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(std::string, cell);
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_layers) = 1;
  TORCH_ARG(bool, bidirectional) = false;
  TORCH_ARG(double, dropout) = 0.0;  ///< between layers
  /// Between layers: one mask per sequence for all time steps (variational_dropout) instead of
  /// a new one at every step.
  TORCH_ARG(bool, variational_dropout) = false;
  /// Variational dropout on a<t-1> as the recurrent product sees it: one mask per sequence,
  /// reused at every step (Gal & Ghahramani 2016). Training mode only.
  TORCH_ARG(double, recurrent_dropout) = 0.0;
  TORCH_ARG(bool, batch_first) = false;
  TORCH_ARG(Init, init) = Init::kUniform;
  /// Gated cells: the bias towards keeping c<t-1> after initialisation (LSTM: b_f; GRUs:
  /// b_u = -forget_bias). Unset: the init's own. The vanilla RNN ignores it.
  TORCH_ARG(optional<double>, forget_bias) = nullopt;
  /// The cell's own options (rnnkit/registry.h), e.g. {{"peephole", true}} for "lstm".
  TORCH_ARG(CellOptions, cell_options) = {};
  /// Bidirectional layers: run the two directions at the same time, forward and backward, each
  /// on its own thread with half the intra-op threads. Unset: when LibTorch has more than one
  /// thread (at::get_num_threads()) and RNNKIT_CONCURRENT_DIRECTIONS is not 0; true: always
  /// (tests); false: never. Results are the sequential path's to float rounding, dropout draws
  /// included. A second derivative (create_graph) through it is refused: set false for that.
  TORCH_ARG(optional<bool>, concurrent_directions) = nullopt;
};

}  // namespace rnnkit

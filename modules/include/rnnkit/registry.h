#pragma once
// Cells by name. Built in: rnn, rnn_relu, gru_simple, gru, gru_reset_after, lstm, lstm_peephole.
// A user registers a cell type of their own once, and every layer and app can then use it:
//
//     rnnkit::register_cell("mgu", [](const rnnkit::CellSpec& s) {
//       return std::make_shared<MGUCellImpl>(s.input_size(), s.hidden_size());
//     });
//     rnnkit::RNN rnn(rnnkit::RNNOptions("mgu", 32, 64));
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "rnnkit/cell.h"
#include "rnnkit/compat.h"
#include "rnnkit/init.h"

namespace rnnkit {

/// What a factory gets: the options common to all cells.
struct CellSpec {
  CellSpec(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(Init, init) = Init::kUniform;
  /// Gated cells: the bias towards keeping c<t-1> after initialisation (LSTM: b_f; GRUs:
  /// b_u = -forget_bias). The vanilla RNN ignores it.
  TORCH_ARG(optional<double>, forget_bias) = nullopt;
};

using CellFactory = std::function<std::shared_ptr<CellImplBase>(const CellSpec&)>;

/// Registers (or replaces) a cell type. Thread-safe.
void register_cell(const std::string& name, CellFactory factory);
/// Builds a cell by name; an unknown name throws, listing the known ones.
std::shared_ptr<CellImplBase> make_cell(const std::string& name, const CellSpec& spec);
bool has_cell(const std::string& name);
/// The registered names, sorted.
std::vector<std::string> cell_names();
/// The cells built into the library, sorted (tests and benchmarks enumerate these, so a new
/// built-in cell is covered by every once-per-cell test without a list to update).
std::vector<std::string> builtin_cell_names();

}  // namespace rnnkit

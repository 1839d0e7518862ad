#pragma once
// Simplified GRU cell, update gate only (docs/equations.md):
//
//     c̃<t> = tanh(W_c [c<t-1>, x<t>] + b_c)
//     Γu   = σ(W_u [c<t-1>, x<t>] + b_u)
//     c<t> = Γu * c̃<t> + (1 - Γu) * c<t-1>
//     a<t> = c<t>
//
// Parameters: W_c, W_u [H, H + D] (recurrent columns first); b_c, b_u [H].
// Shapes: B batch, D input size, H hidden size, T time steps.
#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include "rnnkit/cell.h"
#include "rnnkit/compat.h"
#include "rnnkit/init.h"

namespace rnnkit {

struct SimpleGRUCellOptions {
  SimpleGRUCellOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(Init, init) = Init::kUniform;
  /// If set, b_u = -forget_bias after initialisation: the share of c<t-1> kept, 1 - Γu, starts
  /// at σ(forget_bias), as an LSTM's forget gate does with its forget bias.
  TORCH_ARG(optional<double>, forget_bias) = nullopt;
};

class SimpleGRUCellImpl : public CellBase<SimpleGRUCellImpl, SimpleGRUCellOptions> {
 public:
  static constexpr const char* kName = "rnnkit::SimpleGRUCell";

  SimpleGRUCellImpl(int64_t input_size, int64_t hidden_size)
      : SimpleGRUCellImpl(SimpleGRUCellOptions(input_size, hidden_size)) {}
  explicit SimpleGRUCellImpl(SimpleGRUCellOptions options);

  void reset() override;
  void reset_parameters() override;
  void print_options(std::ostream& stream) const;

  State step(const torch::Tensor& x_t, const State& prev) override;
  Unrolled unroll(const torch::Tensor& x) override;
  bool has_memory_cell() const override { return false; }

  torch::Tensor W_c, b_c, W_u, b_u;
};
TORCH_MODULE(SimpleGRUCell);

}  // namespace rnnkit

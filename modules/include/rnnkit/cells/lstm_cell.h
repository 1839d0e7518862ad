#pragma once
// LSTM cell (docs/equations.md):
//
//     c̃<t> = tanh(W_c [a<t-1>, x<t>] + b_c)
//     Γu   = σ(W_u [a<t-1>, x<t>] + b_u)          update (input) gate
//     Γf   = σ(W_f [a<t-1>, x<t>] + b_f)          forget gate
//     Γo   = σ(W_o [a<t-1>, x<t>] + b_o)          output gate
//     c<t> = Γu * c̃<t> + Γf * c<t-1>
//     a<t> = Γo * tanh(c<t>)
//
// With peephole(true) each gate also sees c<t-1> element-wise:
//
//     Γu = σ(W_u [a<t-1>, x<t>] + p_u * c<t-1> + b_u)      (likewise Γf with p_f, Γo with p_o)
//
// Parameters: W_c, W_u, W_f, W_o [H, H + D] (recurrent columns first); b_c, b_u, b_f, b_o [H];
// p_u, p_f, p_o [H] with peephole only. forget_bias sets b_f after initialisation (1 is common).
// Shapes: B batch, D input size, H hidden size, T time steps.
#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include "rnnkit/cell.h"
#include "rnnkit/compat.h"
#include "rnnkit/init.h"

namespace rnnkit {

struct LSTMCellOptions {
  LSTMCellOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(bool, peephole) = false;
  TORCH_ARG(Init, init) = Init::kUniform;
  /// If set, b_f is filled with this value after initialisation.
  TORCH_ARG(optional<double>, forget_bias) = nullopt;
};

class LSTMCellImpl : public CellBase<LSTMCellImpl, LSTMCellOptions> {
 public:
  static constexpr const char* kName = "rnnkit::LSTMCell";

  LSTMCellImpl(int64_t input_size, int64_t hidden_size)
      : LSTMCellImpl(LSTMCellOptions(input_size, hidden_size)) {}
  explicit LSTMCellImpl(LSTMCellOptions options);

  void reset() override;
  void reset_parameters() override;
  void print_options(std::ostream& stream) const;

  State step(const torch::Tensor& x_t, const State& prev) override;
  Unrolled unroll(const torch::Tensor& x) override;
  bool has_memory_cell() const override { return true; }

  torch::Tensor W_c, b_c, W_u, b_u, W_f, b_f, W_o, b_o;
  torch::Tensor p_u, p_f, p_o;  ///< peephole only
};
TORCH_MODULE(LSTMCell);

}  // namespace rnnkit

#pragma once
// Full GRU cell (docs/equations.md). Default, the course's form (Cho et al. 2014):
//
//     Γr   = σ(W_r [c<t-1>, x<t>] + b_r)
//     Γu   = σ(W_u [c<t-1>, x<t>] + b_u)
//     c̃<t> = tanh(W_c [Γr * c<t-1>, x<t>] + b_c)
//     c<t> = Γu * c̃<t> + (1 - Γu) * c<t-1>
//     a<t> = c<t>
//
// With reset_after(true), the cuDNN / PyTorch nn.GRU form, with W_c = [W_cc | W_cx]:
//
//     c̃<t> = tanh(W_cx x<t> + b_c + Γr * (W_cc c<t-1> + b_cc))
//
// Parameters: W_r, W_u, W_c [H, H + D] (recurrent columns first); b_r, b_u, b_c [H];
// b_cc [H] with reset_after only.
// Shapes: B batch, D input size, H hidden size, T time steps.
//
// The course's form needs two recurrent products per step on the fast path (Γr acts before the
// candidate's product); reset_after needs one.
#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include "rnnkit/cell.h"
#include "rnnkit/compat.h"
#include "rnnkit/init.h"

namespace rnnkit {

struct GRUCellOptions {
  GRUCellOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(bool, reset_after) = false;
  TORCH_ARG(Init, init) = Init::kUniform;
  /// If set, b_u = -forget_bias after initialisation: the share of c<t-1> kept, 1 - Γu, starts
  /// at σ(forget_bias), as an LSTM's forget gate does with its forget bias.
  TORCH_ARG(optional<double>, forget_bias) = nullopt;
};

class GRUCellImpl : public CellBase<GRUCellImpl, GRUCellOptions> {
 public:
  static constexpr const char* kName = "rnnkit::GRUCell";

  GRUCellImpl(int64_t input_size, int64_t hidden_size)
      : GRUCellImpl(GRUCellOptions(input_size, hidden_size)) {}
  explicit GRUCellImpl(GRUCellOptions options);

  void reset() override;
  void reset_parameters() override;
  void print_options(std::ostream& stream) const;

  State step(const torch::Tensor& x_t, const State& prev) override;
  Unrolled unroll(const torch::Tensor& x) override;
  bool has_memory_cell() const override { return false; }

  torch::Tensor W_r, b_r, W_u, b_u, W_c, b_c;
  torch::Tensor b_cc;  ///< reset_after only
};
TORCH_MODULE(GRUCell);

}  // namespace rnnkit

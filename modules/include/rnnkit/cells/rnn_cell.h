#pragma once
// Vanilla RNN cell (docs/equations.md):
//
//     a<t> = g(W_a [a<t-1>, x<t>] + b_a)          g = tanh (default) or relu
//
// Parameters: W_a [H, H + D] (recurrent columns first), b_a [H].
// Shapes: B batch, D input size, H hidden size, T time steps.
#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include "rnnkit/cell.h"
#include "rnnkit/init.h"

namespace rnnkit {

enum class Activation { kTanh, kReLU };

struct RNNCellOptions {
  RNNCellOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(Activation, activation) = Activation::kTanh;
  TORCH_ARG(Init, init) = Init::kUniform;
};

class RNNCellImpl : public CellBase<RNNCellImpl, RNNCellOptions> {
 public:
  static constexpr const char* kName = "rnnkit::RNNCell";

  RNNCellImpl(int64_t input_size, int64_t hidden_size)
      : RNNCellImpl(RNNCellOptions(input_size, hidden_size)) {}
  explicit RNNCellImpl(RNNCellOptions options);

  void reset() override;
  void reset_parameters() override;
  void print_options(std::ostream& stream) const;

  State step(const torch::Tensor& x_t, const State& prev) override;
  Unrolled unroll(const torch::Tensor& x) override;
  bool has_memory_cell() const override { return false; }

  torch::Tensor W_a, b_a;
};
TORCH_MODULE(RNNCell);

}  // namespace rnnkit

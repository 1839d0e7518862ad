#pragma once
// Vanilla RNN cell (docs/equations.md):
//
//     a<t> = g(W_a [a<t-1>, x<t>] + b_a)          g = tanh (default) or relu
//
// Parameters: W_a [H, H + D] (recurrent columns first), b_a [H].
// Shapes: B batch, D input size, H hidden size, T time steps.
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
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

class RNNCellImpl : public torch::nn::Cloneable<RNNCellImpl>, public CellImplBase {
 public:
  RNNCellImpl(int64_t input_size, int64_t hidden_size)
      : RNNCellImpl(RNNCellOptions(input_size, hidden_size)) {}
  explicit RNNCellImpl(RNNCellOptions options);

  void reset() override;
  void reset_parameters() override;
  void pretty_print(std::ostream& stream) const override;

  /// One step: x_t [B, D], prev.a [B, H] (or undefined for zeros) -> a<t>.
  State forward(const torch::Tensor& x_t, const State& prev = {}) { return step(x_t, prev); }

  State step(const torch::Tensor& x_t, const State& prev) override;
  Unrolled unroll(const torch::Tensor& x) override;
  int64_t input_size() const override { return options.input_size(); }
  int64_t hidden_size() const override { return options.hidden_size(); }
  bool has_memory_cell() const override { return false; }

  RNNCellOptions options;
  torch::Tensor W_a, b_a;
};
TORCH_MODULE(RNNCell);

}  // namespace rnnkit

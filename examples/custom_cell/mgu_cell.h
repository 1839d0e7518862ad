#pragma once
// A user-defined cell: the Minimal Gated Unit (Zhou et al. 2016), a GRU whose single forget
// gate Γf plays both the relevance and the update role:
//
//     Γf   = σ(W_f [a<t-1>, x<t>] + b_f)
//     ã<t> = tanh(W_a [Γf * a<t-1>, x<t>] + b_a)
//     a<t> = Γf * ã<t> + (1 - Γf) * a<t-1>
//
// Parameters: W_f, W_a [H, H + D] (recurrent columns first), b_f, b_a [H].
// Shapes: B batch, D input size, H hidden size.
//
// Its own option, `slim` (Heck & Salem 2017), thins the gate: 1 drops x<t> from it
// (Γf = σ(W_f a<t-1> + b_f), W_f [H, H]), 2 drops the bias too (Γf = σ(W_f a<t-1>), no b_f).
// In a config: [model.cell_options] slim = 1.
//
// It implements only the plain step; the default CellImplBase::unroll runs it over time. A cell
// that needs speed also overrides unroll() (see rnnkit's LSTMCell).
#include <rnnkit/rnnkit.h>

namespace mgu {

struct MGUCellOptions {
  MGUCellOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(rnnkit::Init, init) = rnnkit::Init::kUniform;
  TORCH_ARG(int64_t, slim) = 0;
};

// CellBase supplies Cloneable, forward(), the size accessors and checks, and pretty_print.
class MGUCellImpl : public rnnkit::CellBase<MGUCellImpl, MGUCellOptions> {
 public:
  static constexpr const char* kName = "mgu::MGUCell";
  explicit MGUCellImpl(MGUCellOptions options);
  void reset() override;
  void reset_parameters() override;
  void print_options(std::ostream& stream) const;

  rnnkit::State step(const torch::Tensor& x_t, const rnnkit::State& prev) override;
  bool has_memory_cell() const override { return false; }

  torch::Tensor W_f, b_f, W_a, b_a;
};
TORCH_MODULE(MGUCell);

/// Registers the cell under the name "mgu" (idempotent).
void register_mgu();

}  // namespace mgu

#include "rnnkit/cell.h"

#include <c10/util/Exception.h>

#include "rnnkit/precision.h"

namespace rnnkit {

double CellImplBase::matmul_flops_per_step(int64_t batch) const {
  double weights = 0;
  for (const auto& p : parameters()) {
    if (p.dim() == 2) weights += static_cast<double>(p.numel());
  }
  return 2.0 * static_cast<double>(batch) * weights;
}

State CellImplBase::zero_state(int64_t batch, const torch::TensorOptions& like) const {
  State s;
  s.a = torch::zeros({batch, hidden_size()}, like);
  if (has_memory_cell()) s.c = torch::zeros({batch, hidden_size()}, like);
  return s;
}

void check_cell_sizes(const std::string& who, int64_t input_size, int64_t hidden_size) {
  TORCH_CHECK(input_size > 0, who, ": input_size must be positive, got ", input_size);
  TORCH_CHECK(hidden_size > 0, who, ": hidden_size must be positive, got ", hidden_size);
}

State CellImplBase::check_step_args(const torch::Tensor& x_t, const State& prev) const {
  TORCH_CHECK(x_t.dim() == 2, name(), ": expected x_t of shape [B, D] (rank 2), got rank ",
              x_t.dim(), " with shape ", x_t.sizes());
  TORCH_CHECK(x_t.size(1) == input_size(), name(), ": expected x_t with D = ", input_size(),
              " features (input_size), got ", x_t.size(1));
  if (!prev.defined()) return zero_state(x_t.size(0), x_t.options());
  const std::vector<int64_t> want{x_t.size(0), hidden_size()};
  TORCH_CHECK(prev.a.sizes() == want, name(), ": expected state a of shape ",
              c10::IntArrayRef(want), ", got ", prev.a.sizes());
  if (has_memory_cell()) {
    TORCH_CHECK(prev.c.defined() && prev.c.sizes() == want, name(),
                ": expected memory cell c of shape ", c10::IntArrayRef(want), ", got ",
                prev.c.defined() ? prev.c.sizes() : c10::IntArrayRef{});
  }
  return prev;
}

Unrolled CellImplBase::unroll(const torch::Tensor& x) {
  Unrolled u;
  u.projected = x;
  u.step = [this](const torch::Tensor& x_t, const State& prev, const torch::Tensor& a_rec) {
    // The plain step stays in the weights' type under autocast: it is the reference the fast
    // paths are checked against, and a plugin's equations are not narrowed behind its back.
    if (!autocast_dtype(x_t.device().type())) return step(x_t, State{a_rec, prev.c});
    const AutocastGuard full(Precision::kFP32, x_t.device().type());
    return step(x_t, State{a_rec, prev.c});
  };
  return u;
}

}  // namespace rnnkit

// Internal: the per-step recurrent product of the built-in cells' fast paths.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace rnnkit::detail {

/// a<t-1> W_h^T (plus a bias) at every step of one sequence, for a cell's fast path.
///
/// Forward: one addmm per step, as usual. Backward: autograd still runs BPTT step by step, but
/// the gradient of W_h^T is formed once per sequence, Σ_t a<t-1>^T dG<t>, as one GEMM over all
/// steps, instead of T thin GEMMs and T accumulations of an [H, G] gradient (about 20% of an
/// LSTM's training time at H = 256). Only step 0's product takes W_h^T through autograd; the
/// node that adds the other steps' share depends on step 0, so it runs after all of them.
/// Call it exactly once per step, in order. It is not twice differentiable. With grad mode off,
/// or a W_h that needs no gradient, it is a plain addmm, or an addmv for a single row (BLAS
/// would otherwise pack all of W_h^T at every step for one row of output). Under autocast
/// (rnnkit/precision.h) the products run in the lower type and return the weight's type.
class RecurrentProduct {
 public:
  /// W_hT [H, G] (the transposed recurrent columns); steps T and batch B of the sequence.
  RecurrentProduct(const torch::Tensor& W_hT, int64_t steps, int64_t batch);
  /// bias + a @ W_h^T for the next step. bias: [B, G] or [G]; a: [B, H].
  torch::Tensor operator()(const torch::Tensor& bias, const torch::Tensor& a);

 private:
  torch::Tensor W_first_, W_rest_, acts_, grads_;
  torch::Tensor W_rows_;  ///< W_h [G, H] when each step is one row without gradient (addmv)
  c10::ScalarType out_;   ///< the weight's type, which each product's result comes back in
  int64_t t_ = 0, steps_;
};

}  // namespace rnnkit::detail

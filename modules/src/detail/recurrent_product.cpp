#include "recurrent_product.h"

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

namespace rnnkit::detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// Step t >= 1: bias + a @ W with W detached. Backward gives the bias and a their gradients and
/// parks dG<t> in the sequence's buffer for WeightAnchor.
struct StepProduct : torch::autograd::Function<StepProduct> {
  static Tensor forward(AutogradContext* ctx, const Tensor& bias, const Tensor& a, const Tensor& W,
                        const Tensor& acts, const Tensor& grads, int64_t t) {
    acts[t].copy_(a);
    ctx->save_for_backward({W});
    ctx->saved_data["grads"] = grads;
    ctx->saved_data["t"] = t;
    ctx->saved_data["bias_sizes"] = bias.sizes().vec();
    return torch::addmm(bias, a, W);
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const Tensor& dG = g[0];
    ctx->saved_data["grads"].toTensor()[ctx->saved_data["t"].toInt()].copy_(dG);
    const auto bias_sizes = ctx->saved_data["bias_sizes"].toIntVector();
    Tensor d_bias, d_a;
    if (ctx->needs_input_grad(0)) d_bias = dG.sum_to_size(bias_sizes);
    if (ctx->needs_input_grad(1)) d_a = dG.mm(ctx->get_saved_variables()[0].t());
    return {d_bias, d_a, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

/// Passes W through to step 0. Its backward (after every step's, as step 0 comes last in
/// BPTT) adds Σ_{t>=1} a<t-1>^T dG<t> in one GEMM.
struct WeightAnchor : torch::autograd::Function<WeightAnchor> {
  static Tensor forward(AutogradContext* ctx, const Tensor& W, const Tensor& acts,
                        const Tensor& grads) {
    ctx->saved_data["acts"] = acts;
    ctx->saved_data["grads"] = grads;
    return W.clone();
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const Tensor acts = ctx->saved_data["acts"].toTensor();
    const Tensor grads = ctx->saved_data["grads"].toTensor();
    const int64_t T = acts.size(0);
    if (T < 2) return {g[0], Tensor(), Tensor()};
    const Tensor A = acts.narrow(0, 1, T - 1).reshape({-1, acts.size(2)});
    const Tensor G = grads.narrow(0, 1, T - 1).reshape({-1, grads.size(2)});
    const Tensor dW = g[0].defined() ? torch::addmm(g[0], A.t(), G) : A.t().mm(G);
    return {dW, Tensor(), Tensor()};
  }
};

}  // namespace

RecurrentProduct::RecurrentProduct(const Tensor& W_hT, int64_t steps, int64_t batch)
    : steps_(steps) {
  if (!torch::GradMode::is_enabled() || !W_hT.requires_grad() || steps < 2) {
    W_first_ = W_rest_ = W_hT;
    // One row (serving, sampling): a matrix-vector product per step. addmm would have BLAS
    // pack all of W_h^T at every step for a single row, which cost more than the product.
    if (batch == 1 && !torch::GradMode::is_enabled()) W_rows_ = W_hT.t();  // [G, H]
    return;
  }
  W_rest_ = W_hT.detach();
  // Zeros: a step whose gradient never arrives contributes nothing.
  acts_ = torch::zeros({steps, batch, W_hT.size(0)}, W_hT.options().requires_grad(false));
  grads_ = torch::zeros({steps, batch, W_hT.size(1)}, W_hT.options().requires_grad(false));
  W_first_ = WeightAnchor::apply(W_hT, acts_, grads_);
}

Tensor RecurrentProduct::operator()(const Tensor& bias, const Tensor& a) {
  TORCH_CHECK(t_ < steps_, "RecurrentProduct: called for step ", t_ + 1, " of a sequence of ",
              steps_, " steps");
  const int64_t t = t_++;
  if (W_rows_.defined()) {
    const int64_t G = W_rows_.size(0);
    return torch::addmv(bias.reshape({G}), W_rows_, a.reshape({-1})).view({1, G});
  }
  if (t == 0 || !acts_.defined()) return torch::addmm(bias, a, t == 0 ? W_first_ : W_rest_);
  return StepProduct::apply(bias, a, W_rest_, acts_, grads_, t);
}

}  // namespace rnnkit::detail

#include "recurrent_product.h"

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include "rnnkit/precision.h"

namespace rnnkit::detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// Step t >= 1: bias + a @ W with W detached, in W's type (the lower type under autocast: the
/// product's inputs are cast by hand, as autocast does not reach into a custom function's
/// backward). Backward gives the bias and a their gradients, in their own types, and parks
/// dG<t> in the sequence's buffer for WeightAnchor.
struct StepProduct : torch::autograd::Function<StepProduct> {
  static Tensor forward(AutogradContext* ctx, const Tensor& bias, const Tensor& a, const Tensor& W,
                        const Tensor& acts, const Tensor& grads, int64_t t) {
    acts[t].copy_(a);
    ctx->save_for_backward({W});
    ctx->saved_data["grads"] = grads;
    ctx->saved_data["t"] = t;
    ctx->saved_data["bias_sizes"] = bias.sizes().vec();
    const auto type = W.scalar_type();
    if (a.scalar_type() == type) return torch::addmm(bias, a, W);
    // Under autocast: the gradients go back in the inputs' type (bias and a share it).
    ctx->saved_data["input_type"] = static_cast<int64_t>(a.scalar_type());
    return torch::addmm(bias.to(type), a.to(type), W);
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const Tensor W = ctx->get_saved_variables()[0];
    const Tensor dG = g[0].to(W.scalar_type());
    ctx->saved_data["grads"].toTensor()[ctx->saved_data["t"].toInt()].copy_(dG);
    const auto bias_sizes = ctx->saved_data["bias_sizes"].toIntVector();
    const auto input = ctx->saved_data.find("input_type");
    const auto type = input == ctx->saved_data.end()
                          ? W.scalar_type()
                          : static_cast<c10::ScalarType>(input->second.toInt());
    Tensor d_bias, d_a;
    if (ctx->needs_input_grad(0)) d_bias = dG.sum_to_size(bias_sizes).to(type);
    if (ctx->needs_input_grad(1)) d_a = dG.mm(W.t()).to(type);
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
    ctx->saved_data["type"] = static_cast<int64_t>(W.scalar_type());
    return W.clone();
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const Tensor acts = ctx->saved_data["acts"].toTensor();
    const Tensor grads = ctx->saved_data["grads"].toTensor();
    const int64_t T = acts.size(0);
    if (T < 2) return {g[0], Tensor(), Tensor()};
    const Tensor A = acts.narrow(0, 1, T - 1).reshape({-1, acts.size(2)});
    const Tensor G = grads.narrow(0, 1, T - 1).reshape({-1, grads.size(2)});
    const auto type = static_cast<c10::ScalarType>(ctx->saved_data["type"].toInt());
    if (A.scalar_type() != type) {  // the buffers in autocast's lower type
      const Tensor dW = A.t().mm(G).to(type);
      return {g[0].defined() ? g[0] + dW : dW, Tensor(), Tensor()};
    }
    const Tensor dW = g[0].defined() ? torch::addmm(g[0], A.t(), G) : A.t().mm(G);
    return {dW, Tensor(), Tensor()};
  }
};

}  // namespace

RecurrentProduct::RecurrentProduct(const Tensor& W_hT, int64_t steps, int64_t batch)
    : out_(W_hT.scalar_type()), steps_(steps) {
  // Under autocast (an fp32 weight: autocast leaves float64 alone), the products run in its
  // lower type with W_h^T cast once per sequence here: autocast caches the casts of leaf
  // weights only, and would cast the detached W_h^T again at every step.
  const auto lower = autocast_dtype(W_hT.device().type());
  const bool cast = lower && W_hT.scalar_type() == torch::kFloat;
  const auto type = cast ? *lower : W_hT.scalar_type();
  if (!torch::GradMode::is_enabled() || !W_hT.requires_grad() || steps < 2) {
    W_first_ = W_rest_ = W_hT.to(type);
    // One row (serving, sampling): a matrix-vector product per step. addmm would have BLAS
    // pack all of W_h^T at every step for a single row, which cost more than the product.
    if (batch == 1 && !torch::GradMode::is_enabled()) W_rows_ = W_rest_.t();  // [G, H]
    return;
  }
  W_rest_ = W_hT.detach().to(type);
  // Zeros: a step whose gradient never arrives contributes nothing.
  const auto buffers = W_hT.options().dtype(type).requires_grad(false);
  acts_ = torch::zeros({steps, batch, W_hT.size(0)}, buffers);
  grads_ = torch::zeros({steps, batch, W_hT.size(1)}, buffers);
  W_first_ = WeightAnchor::apply(W_hT, acts_, grads_).to(type);
}

Tensor RecurrentProduct::operator()(const Tensor& bias, const Tensor& a) {
  TORCH_CHECK(t_ < steps_, "RecurrentProduct: called for step ", t_ + 1, " of a sequence of ",
              steps_, " steps");
  const int64_t t = t_++;
  const Tensor& W = t == 0 ? W_first_ : W_rest_;
  if (W_rest_.scalar_type() == out_) {  // no autocast: this is every step's path, kept lean
    if (W_rows_.defined()) {
      const int64_t G = W_rows_.size(0);
      return torch::addmv(bias.reshape({G}), W_rows_, a.reshape({-1})).view({1, G});
    }
    if (t == 0 || !acts_.defined()) return torch::addmm(bias, a, W);
    return StepProduct::apply(bias, a, W_rest_, acts_, grads_, t);
  }
  // Under autocast each product's result comes back in the weight's own type (fp32), so that
  // the cells' gates and states are computed in it.
  const auto type = W_rest_.scalar_type();
  if (W_rows_.defined()) {
    const int64_t G = W_rows_.size(0);
    return torch::addmv(bias.reshape({G}).to(type), W_rows_, a.reshape({-1}).to(type))
        .view({1, G})
        .to(out_);
  }
  if (t == 0 || !acts_.defined()) return torch::addmm(bias.to(type), a.to(type), W).to(out_);
  return StepProduct::apply(bias, a, W_rest_, acts_, grads_, t).to(out_);
}

}  // namespace rnnkit::detail

// The built-in cells. Each has a plain step (one line per equation) and a fast path (one input
// GEMM over all steps, one fused recurrent GEMM per step); tests/test_cells.cpp checks they agree.
#include <ostream>

#include <c10/util/Exception.h>
#include <torch/nn/functional/activation.h>

#include "detail/recurrent_product.h"
#include "rnnkit/cells/gru_cell.h"
#include "rnnkit/cells/lstm_cell.h"
#include "rnnkit/cells/rnn_cell.h"
#include "rnnkit/cells/simple_gru_cell.h"

namespace rnnkit {
namespace {

using torch::Tensor;

/// x [T, B, D] times the input columns of the fused weight W [G, H + D], plus b: [T, B, G].
/// Under autocast the product runs in the lower type; its result is cast back by hand to W's
/// type, so that the gates are computed in fp32 (autocast would leave it in bf16).
Tensor project_inputs(const Tensor& x, const Tensor& W, const Tensor& b, int64_t H) {
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2);
  auto W_x = W.narrow(1, H, D);
  return torch::addmm(b, x.reshape({T * B, D}), W_x.t())
      .view({T, B, W.size(0)})
      .to(W.scalar_type());
}

/// The recurrent columns of the fused weight, transposed for a<t-1> [B, H] @ W_h^T.
Tensor recurrent_t(const Tensor& W, int64_t H) { return W.narrow(1, 0, H).t(); }

/// The per-step recurrent product over the sequence x [T, B, D] (shared by the step closure).
std::shared_ptr<detail::RecurrentProduct> product(const Tensor& W_hT, const Tensor& x) {
  return std::make_shared<detail::RecurrentProduct>(W_hT, x.size(0), x.size(1));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// RNNCell

RNNCellImpl::RNNCellImpl(RNNCellOptions options_) : CellBase(std::move(options_)) { reset(); }

void RNNCellImpl::reset() {
  const int64_t H = options.hidden_size(), D = options.input_size();
  W_a = register_parameter("W_a", torch::empty({H, H + D}));
  b_a = register_parameter("b_a", torch::empty({H}));
  reset_parameters();
}

void RNNCellImpl::reset_parameters() { detail::init_gate(W_a, b_a, options.init()); }

void RNNCellImpl::print_options(std::ostream& os) const {
  os << ", activation=" << (options.activation() == Activation::kTanh ? "tanh" : "relu")
     << ", init=" << to_string(options.init());
}

State RNNCellImpl::step(const Tensor& x_t, const State& prev_) {
  const State prev = check_step_args(x_t, prev_);
  const Tensor ax = torch::cat({prev.a, x_t}, 1);  // [a<t-1>, x<t>]
  const Tensor z = torch::linear(ax, W_a, b_a);    // W_a [..] + b_a
  return {options.activation() == Activation::kTanh ? torch::tanh(z) : torch::relu(z), {}};
}

Unrolled RNNCellImpl::unroll(const Tensor& x) {
  const int64_t H = options.hidden_size();
  Unrolled u;
  u.projected = project_inputs(x, W_a, b_a, H);  // [T, B, H]: W_ax x<t> + b_a, every t
  auto rec = product(recurrent_t(W_a, H), x);    // W_aa^T [H, H]
  const bool tanh = options.activation() == Activation::kTanh;
  u.step = [rec, tanh](const Tensor& gx, const State&, const Tensor& a_rec) {
    Tensor z = (*rec)(gx, a_rec);                    // [B, H]: W_aa a<t-1> + W_ax x<t> + b_a
    return State{tanh ? z.tanh_() : z.relu_(), {}};  // a<t> [B, H]
  };
  return u;
}

// ---------------------------------------------------------------------------------------------
// SimpleGRUCell

SimpleGRUCellImpl::SimpleGRUCellImpl(SimpleGRUCellOptions options_)
    : CellBase(std::move(options_)) {
  reset();
}

void SimpleGRUCellImpl::reset() {
  const int64_t H = options.hidden_size(), D = options.input_size();
  W_c = register_parameter("W_c", torch::empty({H, H + D}));
  b_c = register_parameter("b_c", torch::empty({H}));
  W_u = register_parameter("W_u", torch::empty({H, H + D}));
  b_u = register_parameter("b_u", torch::empty({H}));
  reset_parameters();
}

void SimpleGRUCellImpl::reset_parameters() {
  detail::init_gate(W_c, b_c, options.init());
  detail::init_gate(W_u, b_u, options.init());
  if (options.forget_bias()) {
    torch::NoGradGuard no_grad;
    b_u.fill_(-*options.forget_bias());
  }
}

void SimpleGRUCellImpl::print_options(std::ostream& os) const {
  os << ", init=" << to_string(options.init());
}

State SimpleGRUCellImpl::step(const Tensor& x_t, const State& prev_) {
  const State prev = check_step_args(x_t, prev_);
  const Tensor& c_prev = prev.a;                                       // c<t-1> = a<t-1>
  const Tensor cx = torch::cat({c_prev, x_t}, 1);                      // [c<t-1>, x<t>]
  const Tensor c_tilde = torch::tanh(torch::linear(cx, W_c, b_c));     // c̃<t>
  const Tensor gamma_u = torch::sigmoid(torch::linear(cx, W_u, b_u));  // Γu
  const Tensor c = gamma_u * c_tilde + (1 - gamma_u) * c_prev;         // c<t>
  return {c, {}};                                                      // a<t> = c<t>
}

Unrolled SimpleGRUCellImpl::unroll(const Tensor& x) {
  const int64_t H = options.hidden_size();
  const Tensor W = torch::cat({W_u, W_c}, 0);  // gate rows [u | c̃]: one GEMM for both
  Unrolled u;
  u.projected = project_inputs(x, W, torch::cat({b_u, b_c}), H);  // [T, B, 2H]
  auto rec = product(recurrent_t(W, H), x);                       // [H, 2H]
  u.step = [rec](const Tensor& gx, const State& prev, const Tensor& a_rec) {
    const auto g = (*rec)(gx, a_rec).chunk(2, 1);  // 2 x [B, H]: u and c̃ pre-activations
    const Tensor gamma_u = g[0].sigmoid();         // Γu [B, H]
    const Tensor c_tilde = g[1].tanh();            // c̃<t> [B, H]
    return State{torch::lerp(prev.a, c_tilde, gamma_u), {}};  // Γu c̃ + (1 - Γu) c<t-1>
  };
  return u;
}

// ---------------------------------------------------------------------------------------------
// GRUCell

GRUCellImpl::GRUCellImpl(GRUCellOptions options_) : CellBase(std::move(options_)) { reset(); }

void GRUCellImpl::reset() {
  const int64_t H = options.hidden_size(), D = options.input_size();
  W_r = register_parameter("W_r", torch::empty({H, H + D}));
  b_r = register_parameter("b_r", torch::empty({H}));
  W_u = register_parameter("W_u", torch::empty({H, H + D}));
  b_u = register_parameter("b_u", torch::empty({H}));
  W_c = register_parameter("W_c", torch::empty({H, H + D}));
  b_c = register_parameter("b_c", torch::empty({H}));
  if (options.reset_after()) b_cc = register_parameter("b_cc", torch::empty({H}));
  reset_parameters();
}

void GRUCellImpl::reset_parameters() {
  detail::init_gate(W_r, b_r, options.init());
  detail::init_gate(W_u, b_u, options.init());
  detail::init_gate(W_c, b_c, options.init());
  if (b_cc.defined()) detail::init_vector(b_cc, options.hidden_size(), options.init());
  if (options.forget_bias()) {
    torch::NoGradGuard no_grad;
    b_u.fill_(-*options.forget_bias());
  }
}

void GRUCellImpl::print_options(std::ostream& os) const {
  os << ", reset_after=" << (options.reset_after() ? "true" : "false")
     << ", init=" << to_string(options.init());
}

State GRUCellImpl::step(const Tensor& x_t, const State& prev_) {
  const State prev = check_step_args(x_t, prev_);
  const int64_t H = options.hidden_size();
  const Tensor& c_prev = prev.a;                                       // c<t-1> = a<t-1>
  const Tensor cx = torch::cat({c_prev, x_t}, 1);                      // [c<t-1>, x<t>]
  const Tensor gamma_r = torch::sigmoid(torch::linear(cx, W_r, b_r));  // Γr
  const Tensor gamma_u = torch::sigmoid(torch::linear(cx, W_u, b_u));  // Γu
  Tensor c_tilde;
  if (!options.reset_after()) {
    c_tilde = torch::tanh(torch::linear(torch::cat({gamma_r * c_prev, x_t}, 1), W_c, b_c));
  } else {  // c̃ = tanh(W_cx x + b_c + Γr * (W_cc c<t-1> + b_cc))
    const Tensor W_cc = W_c.narrow(1, 0, H), W_cx = W_c.narrow(1, H, options.input_size());
    c_tilde =
        torch::tanh(torch::linear(x_t, W_cx, b_c) + gamma_r * torch::linear(c_prev, W_cc, b_cc));
  }
  const Tensor c = gamma_u * c_tilde + (1 - gamma_u) * c_prev;  // c<t>
  return {c, {}};                                               // a<t> = c<t>
}

Unrolled GRUCellImpl::unroll(const Tensor& x) {
  const int64_t H = options.hidden_size();
  const Tensor W = torch::cat({W_r, W_u, W_c}, 0);  // gate rows [r | u | c̃]
  Unrolled u;
  u.projected = project_inputs(x, W, torch::cat({b_r, b_u, b_c}), H);  // [T, B, 3H]
  if (!options.reset_after()) {
    // Γr acts on c<t-1> before the candidate's product: two recurrent GEMMs per step.
    auto rec_ru = product(recurrent_t(W.narrow(0, 0, 2 * H), H), x);  // [H, 2H]
    auto rec_c = product(recurrent_t(W_c, H), x);                     // [H, H]
    u.step = [rec_ru, rec_c, H](const Tensor& gx, const State& prev, const Tensor& a_rec) {
      const auto gx_ru_c = gx.split_with_sizes({2 * H, H}, 1);              // [B, 2H], [B, H]
      const auto ru = (*rec_ru)(gx_ru_c[0], a_rec).sigmoid_().chunk(2, 1);  // Γr, Γu [B, H]
      const Tensor c_tilde = (*rec_c)(gx_ru_c[1], ru[0] * a_rec).tanh_();   // c̃<t> [B, H]
      return State{torch::lerp(prev.a, c_tilde, ru[1]), {}};  // Γu c̃ + (1 - Γu) c<t-1>
    };
  } else {
    auto rec = product(recurrent_t(W, H), x);
    // Recurrent bias [0 | 0 | b_cc], so one addmm gives all three recurrent pre-activations.
    const Tensor b_h = torch::cat({torch::zeros({2 * H}, b_cc.options()), b_cc});
    u.step = [rec, b_h, H](const Tensor& gx, const State& prev, const Tensor& a_rec) {
      const auto x_ru_c = gx.split_with_sizes({2 * H, H}, 1);                  // [B, 2H], [B, H]
      const auto h_ru_c = (*rec)(b_h, a_rec).split_with_sizes({2 * H, H}, 1);  // [B, 2H], [B, H]
      const auto ru = (x_ru_c[0] + h_ru_c[0]).sigmoid_().chunk(2, 1);          // Γr, Γu [B, H]
      const Tensor c_tilde = torch::addcmul(x_ru_c[1], ru[0], h_ru_c[1]).tanh_();  // c̃<t> [B, H]
      return State{torch::lerp(prev.a, c_tilde, ru[1]), {}};  // Γu c̃ + (1 - Γu) c<t-1>
    };
  }
  return u;
}

// ---------------------------------------------------------------------------------------------
// LSTMCell

LSTMCellImpl::LSTMCellImpl(LSTMCellOptions options_) : CellBase(std::move(options_)) { reset(); }

void LSTMCellImpl::reset() {
  const int64_t H = options.hidden_size(), D = options.input_size();
  W_c = register_parameter("W_c", torch::empty({H, H + D}));
  b_c = register_parameter("b_c", torch::empty({H}));
  W_u = register_parameter("W_u", torch::empty({H, H + D}));
  b_u = register_parameter("b_u", torch::empty({H}));
  W_f = register_parameter("W_f", torch::empty({H, H + D}));
  b_f = register_parameter("b_f", torch::empty({H}));
  W_o = register_parameter("W_o", torch::empty({H, H + D}));
  b_o = register_parameter("b_o", torch::empty({H}));
  if (options.peephole()) {
    p_u = register_parameter("p_u", torch::empty({H}));
    p_f = register_parameter("p_f", torch::empty({H}));
    p_o = register_parameter("p_o", torch::empty({H}));
  }
  reset_parameters();
}

void LSTMCellImpl::reset_parameters() {
  detail::init_gate(W_c, b_c, options.init());
  detail::init_gate(W_u, b_u, options.init());
  detail::init_gate(W_f, b_f, options.init());
  detail::init_gate(W_o, b_o, options.init());
  for (const auto& p : {p_u, p_f, p_o}) {
    if (p.defined()) detail::init_vector(p, options.hidden_size(), options.init());
  }
  if (options.forget_bias()) {
    torch::NoGradGuard no_grad;
    b_f.fill_(*options.forget_bias());
  }
}

void LSTMCellImpl::print_options(std::ostream& os) const {
  os << ", peephole=" << (options.peephole() ? "true" : "false")
     << ", init=" << to_string(options.init());
  if (options.forget_bias()) os << ", forget_bias=" << *options.forget_bias();
}

State LSTMCellImpl::step(const Tensor& x_t, const State& prev_) {
  const State prev = check_step_args(x_t, prev_);
  const Tensor ax = torch::cat({prev.a, x_t}, 1);  // [a<t-1>, x<t>]
  // σ(W [a<t-1>, x<t>] + p * c<t-1> + b); the peephole term only with peephole(true).
  auto gate = [&](const Tensor& W, const Tensor& b, const Tensor& p) {
    const Tensor z = torch::linear(ax, W, b);
    return torch::sigmoid(p.defined() ? z + p * prev.c : z);
  };
  const Tensor c_tilde = torch::tanh(torch::linear(ax, W_c, b_c));  // c̃<t>
  const Tensor gamma_u = gate(W_u, b_u, p_u);                       // Γu
  const Tensor gamma_f = gate(W_f, b_f, p_f);                       // Γf
  const Tensor gamma_o = gate(W_o, b_o, p_o);                       // Γo
  const Tensor c = gamma_u * c_tilde + gamma_f * prev.c;            // c<t>
  const Tensor a = gamma_o * torch::tanh(c);                        // a<t>
  return {a, c};
}

Unrolled LSTMCellImpl::unroll(const Tensor& x) {
  const int64_t H = options.hidden_size();
  // Gate rows [u | f | o | c̃]: the three sigmoids are contiguous, so one kernel applies them.
  const Tensor W = torch::cat({W_u, W_f, W_o, W_c}, 0);
  Unrolled u;
  u.projected = project_inputs(x, W, torch::cat({b_u, b_f, b_o, b_c}), H);            // [T, B, 4H]
  auto rec = product(recurrent_t(W, H), x);                                           // [H, 4H]
  const Tensor peep = options.peephole() ? torch::stack({p_u, p_f, p_o}) : Tensor();  // [3, H]
  u.step = [rec, peep, H](const Tensor& gx, const State& prev, const Tensor& a_rec) {
    // Slices by split/chunk: their backward is one cat, where narrow's would zero-fill and
    // add a full-width gradient per slice.
    const auto gates = (*rec)(gx, a_rec).split_with_sizes({3 * H, H}, 1);  // [B, 3H], [B, H]
    Tensor sig = gates[0];
    if (peep.defined()) {
      // + p ∘ c<t-1> per gate: [B, 3, H] + [3, H] * [B, 1, H]
      sig = torch::addcmul(sig.view({-1, 3, H}), peep, prev.c.unsqueeze(1)).view({-1, 3 * H});
    }
    const auto ufo = sig.sigmoid().chunk(3, 1);                         // Γu, Γf, Γo [B, H]
    const Tensor c_tilde = gates[1].tanh();                             // c̃<t> [B, H]
    const Tensor c = torch::addcmul(ufo[0] * c_tilde, ufo[1], prev.c);  // Γu c̃ + Γf c<t-1>
    const Tensor a = ufo[2] * c.tanh();                                 // a<t> = Γo tanh(c<t>)
    return State{a, c};
  };
  return u;
}

}  // namespace rnnkit

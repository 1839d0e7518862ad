#include "mgu_cell.h"

#include <ostream>

namespace mgu {

using torch::Tensor;

MGUCellImpl::MGUCellImpl(MGUCellOptions options_) : CellBase(std::move(options_)) { reset(); }

void MGUCellImpl::reset() {
  TORCH_CHECK(options.slim() >= 0 && options.slim() <= 2, "MGUCell: slim must be 0, 1 or 2, got ",
              options.slim());
  const int64_t H = options.hidden_size(), D = options.input_size();
  W_f = register_parameter("W_f", torch::empty({H, options.slim() == 0 ? H + D : H}));
  if (options.slim() < 2) b_f = register_parameter("b_f", torch::empty({H}));
  W_a = register_parameter("W_a", torch::empty({H, H + D}));
  b_a = register_parameter("b_a", torch::empty({H}));
  reset_parameters();
}

void MGUCellImpl::reset_parameters() {
  if (b_f.defined()) {
    rnnkit::detail::init_gate(W_f, b_f, options.init());
  } else {
    rnnkit::detail::init_gate(W_f, torch::empty({W_f.size(0)}, W_f.options()), options.init());
  }
  rnnkit::detail::init_gate(W_a, b_a, options.init());
}

void MGUCellImpl::print_options(std::ostream& os) const { os << ", slim=" << options.slim(); }

rnnkit::State MGUCellImpl::step(const Tensor& x_t, const rnnkit::State& prev_) {
  const rnnkit::State prev = check_step_args(x_t, prev_);
  const Tensor gate_in = options.slim() == 0 ? torch::cat({prev.a, x_t}, 1) : prev.a;
  const Tensor gamma_f = torch::sigmoid(torch::linear(gate_in, W_f, b_f));  // b_f: none if slim 2
  const Tensor a_tilde =
      torch::tanh(torch::linear(torch::cat({gamma_f * prev.a, x_t}, 1), W_a, b_a));
  const Tensor a = gamma_f * a_tilde + (1 - gamma_f) * prev.a;
  return {a, {}};
}

void register_mgu() {
  rnnkit::register_cell(
      "mgu",
      [](const rnnkit::CellSpec& s) {
        return std::make_shared<MGUCellImpl>(MGUCellOptions(s.input_size(), s.hidden_size())
                                                 .init(s.init())
                                                 .slim(s.option<int64_t>("slim")));
      },
      {{"slim", int64_t{0}, "thin the gate: 1 without x<t>, 2 without x<t> and b_f", 0, 2}});
}

}  // namespace mgu

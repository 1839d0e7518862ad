#include "rnnkit/recurrent.h"

#include <ostream>

#include <c10/util/Exception.h>

#include "rnnkit/registry.h"

namespace rnnkit {

using torch::Tensor;

namespace detail {

Tensor to_time_major(const Tensor& input, bool batch_first, int64_t input_size, const char* who) {
  TORCH_CHECK(input.defined(), who, ": expected an input tensor, got an undefined one");
  TORCH_CHECK(input.dim() == 3, who, ": expected input of rank 3 (",
              batch_first ? "[B, T, D] with batch_first" : "[T, B, D]", "), got rank ", input.dim(),
              " with shape ", input.sizes());
  TORCH_CHECK(input.size(2) == input_size, who, ": expected input with D = ", input_size,
              " features (input_size), got ", input.size(2), " (shape ", input.sizes(), ")");
  TORCH_CHECK(input.is_floating_point(), who, ": expected a floating-point input, got ",
              input.scalar_type());
  Tensor x = batch_first ? input.transpose(0, 1) : input;
  TORCH_CHECK(x.size(0) > 0 && x.size(1) > 0, who,
              ": expected at least one time step and one sequence, got T = ", x.size(0),
              ", B = ", x.size(1));
  return x;
}

SequenceMask make_sequence_mask(const Tensor& x, const Tensor& lengths, const char* who) {
  SequenceMask m;
  m.T = x.size(0);
  m.B = x.size(1);
  if (!lengths.defined()) return m;
  TORCH_CHECK(lengths.scalar_type() == torch::kLong, who,
              ": expected lengths of dtype int64 (torch::kLong), got ", lengths.scalar_type());
  TORCH_CHECK(lengths.device().is_cpu() || lengths.device() == x.device(), who,
              ": expected lengths on the CPU or on the input's device (", x.device(), "), got ",
              lengths.device());
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == m.B, who,
              ": expected lengths of shape [B] = [", m.B, "], got ", lengths.sizes());
  const Tensor lens = lengths.to(x.device());
  const int64_t lo = lens.min().item<int64_t>(), hi = lens.max().item<int64_t>();
  TORCH_CHECK(lo >= 1 && hi <= m.T, who, ": expected every length in [1, T = ", m.T,
              "], got lengths from ", lo, " to ", hi);
  if (lo == m.T) return m;  // no padding: skip the masking work entirely
  m.lengths = lens;
  const Tensor t = torch::arange(m.T, lens.options()).unsqueeze(1);  // [T, 1]
  const Tensor valid = t < lens.unsqueeze(0);                        // [T, B]
  m.valid = valid.unsqueeze(2);
  m.valid_steps = m.valid.unbind(0);
  m.reverse_index = torch::where(valid, lens.unsqueeze(0) - 1 - t, t);
  return m;
}

Tensor recurrent_dropout_mask(int64_t batch, int64_t hidden, double p,
                              const torch::TensorOptions& like) {
  return torch::bernoulli(torch::full({batch, hidden}, 1.0 - p, like)).div_(1.0 - p);
}

}  // namespace detail

Tensor variational_dropout(const Tensor& x, double p, bool training) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "variational_dropout: expected p in [0, 1), got ", p);
  TORCH_CHECK(x.dim() == 3, "variational_dropout: expected x [T, B, D], got ", x.sizes());
  if (!training || p == 0.0) return x;
  return x * detail::recurrent_dropout_mask(x.size(1), x.size(2), p, x.options()).unsqueeze(0);
}

namespace {

/// Puts steps back where they came from, or reverses each sequence within its length (the same
/// permutation: it is its own inverse).
Tensor reverse_time(const Tensor& x, const detail::SequenceMask& mask) {
  if (mask.empty()) return x.flip(0);
  return x.gather(0, mask.reverse_index.unsqueeze(2).expand_as(x));
}

void check_state(const CellImplBase& cell, const State& s, const Tensor& x, const char* who) {
  const std::vector<int64_t> want{x.size(1), cell.hidden_size()};
  TORCH_CHECK(s.a.sizes() == want, who, ": expected an initial state a of shape ",
              c10::IntArrayRef(want), ", got ", s.a.sizes());
  TORCH_CHECK(s.a.device() == x.device() && s.a.scalar_type() == x.scalar_type(), who,
              ": expected the initial state on ", x.device(), " as ", x.scalar_type(), ", got ",
              s.a.device(), " as ", s.a.scalar_type());
  if (cell.has_memory_cell()) {
    TORCH_CHECK(s.c.defined() && s.c.sizes() == want, who,
                ": expected an initial memory cell c of shape ", c10::IntArrayRef(want), ", got ",
                s.c.defined() ? s.c.sizes() : c10::IntArrayRef{});
  }
}

}  // namespace

RecurrentLayerImpl::RecurrentLayerImpl(RecurrentOptions options_) : options(std::move(options_)) {
  reset();
}

void RecurrentLayerImpl::reset() {
  TORCH_CHECK(options.rnn().recurrent_dropout() >= 0.0 && options.rnn().recurrent_dropout() < 1.0,
              "rnnkit::RecurrentLayer: expected recurrent_dropout in [0, 1), got ",
              options.rnn().recurrent_dropout());
  cell = register_module("cell", make_cell(options.rnn().cell(), CellSpec(options.rnn())));
}

void RecurrentLayerImpl::reset_parameters() { cell->reset_parameters(); }

void RecurrentLayerImpl::pretty_print(std::ostream& os) const {
  os << "rnnkit::RecurrentLayer(cell="
     << cell_label(options.rnn().cell(), options.rnn().cell_options())
     << ", input_size=" << options.rnn().input_size()
     << ", hidden_size=" << options.rnn().hidden_size()
     << ", batch_first=" << (options.rnn().batch_first() ? "true" : "false")
     << ", reverse=" << (options.reverse() ? "true" : "false")
     << ", recurrent_dropout=" << options.rnn().recurrent_dropout() << ")";
}

RecurrentOutput RecurrentLayerImpl::forward(const Tensor& input, const Tensor& lengths,
                                            const State& initial_state) {
  const char* who = "rnnkit::RecurrentLayer";
  const Tensor x =
      detail::to_time_major(input, options.rnn().batch_first(), options.rnn().input_size(), who);
  const detail::SequenceMask mask = detail::make_sequence_mask(x, lengths, who);
  RecurrentOutput out = forward_time_major(x, mask, initial_state);
  if (options.rnn().batch_first()) out.output = out.output.transpose(0, 1);
  return out;
}

Tensor RecurrentLayerImpl::draw_dropout_mask(int64_t B, const torch::TensorOptions& like) {
  if (!is_training() || options.rnn().recurrent_dropout() <= 0.0) return {};
  return detail::recurrent_dropout_mask(B, cell->hidden_size(), options.rnn().recurrent_dropout(),
                                        like);
}

RecurrentOutput RecurrentLayerImpl::forward_time_major(const Tensor& x_in,
                                                       const detail::SequenceMask& mask,
                                                       const State& initial_state) {
  return forward_time_major(x_in, mask, initial_state,
                            draw_dropout_mask(x_in.size(1), x_in.options()));
}

RecurrentOutput RecurrentLayerImpl::forward_time_major(const Tensor& x_in,
                                                       const detail::SequenceMask& mask,
                                                       const State& initial_state,
                                                       const Tensor& drop) {
  const int64_t T = x_in.size(0), B = x_in.size(1);
  const Tensor x = options.reverse() ? reverse_time(x_in, mask) : x_in;

  State state;
  if (initial_state.defined()) {
    check_state(*cell, initial_state, x, "rnnkit::RecurrentLayer");
    state = initial_state;
  } else {
    state = cell->zero_state(B, x.options());
  }

  const Unrolled unrolled = cell->unroll(x);
  const std::vector<Tensor> gx = unrolled.projected.unbind(0);
  std::vector<Tensor> outputs;
  outputs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    State next = unrolled.step(gx[t], state, drop.defined() ? state.a * drop : state.a);
    if (!mask.empty()) {  // past a sequence's end its state stops changing
      const Tensor& valid = mask.valid_steps[t];
      next.a = torch::where(valid, next.a, state.a);
      if (next.c.defined()) next.c = torch::where(valid, next.c, state.c);
    }
    outputs.push_back(next.a);
    state = std::move(next);
  }
  Tensor output = torch::stack(outputs);
  if (!mask.empty()) output = output.masked_fill(mask.valid.logical_not(), 0);
  if (options.reverse()) output = reverse_time(output, mask);
  return {output, state};
}

}  // namespace rnnkit

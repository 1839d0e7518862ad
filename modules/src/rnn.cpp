#include "rnnkit/rnn.h"

#include <ostream>

#include <c10/util/Exception.h>

namespace rnnkit {

using torch::Tensor;

Tensor RNNOutput::a_n() const {
  std::vector<Tensor> a;
  for (const auto& s : states) a.push_back(s.a);
  return torch::stack(a);
}

Tensor RNNOutput::c_n() const {
  if (states.empty() || !states.front().c.defined()) return {};
  std::vector<Tensor> c;
  for (const auto& s : states) c.push_back(s.c);
  return torch::stack(c);
}

std::vector<State> unstack_states(const Tensor& a0, const Tensor& c0) {
  TORCH_CHECK(a0.dim() == 3, "unstack_states: expected a0 of shape [L*K, B, H], got ", a0.sizes());
  TORCH_CHECK(!c0.defined() || c0.sizes() == a0.sizes(),
              "unstack_states: expected c0 of the shape of a0 ", a0.sizes(), ", got ", c0.sizes());
  std::vector<State> states;
  for (int64_t i = 0; i < a0.size(0); ++i) {
    states.push_back({a0[i], c0.defined() ? c0[i] : Tensor()});
  }
  return states;
}

RNNImpl::RNNImpl(RNNOptions options_) : options(std::move(options_)) { reset(); }

void RNNImpl::reset() {
  TORCH_CHECK(options.num_layers() >= 1, "rnnkit::RNN: expected num_layers >= 1, got ",
              options.num_layers());
  TORCH_CHECK(options.dropout() >= 0.0 && options.dropout() < 1.0,
              "rnnkit::RNN: expected dropout in [0, 1), got ", options.dropout());
  TORCH_CHECK(options.hidden_size() > 0, "rnnkit::RNN: hidden_size must be positive, got ",
              options.hidden_size());
  layers_.clear();
  const int64_t K = num_directions();
  for (int64_t l = 0; l < options.num_layers(); ++l) {
    const int64_t in = l == 0 ? options.input_size() : options.hidden_size() * K;
    for (int64_t d = 0; d < K; ++d) {
      auto layer = Recurrent(RecurrentOptions(options.cell(), in, options.hidden_size())
                                 .reverse(d == 1)
                                 .recurrent_dropout(options.recurrent_dropout())
                                 .init(options.init())
                                 .forget_bias(options.forget_bias()));
      const std::string name = "l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      layers_.push_back(register_module(name, layer));
    }
  }
}

void RNNImpl::reset_parameters() {
  for (auto& layer : layers_) layer->reset_parameters();
}

void RNNImpl::pretty_print(std::ostream& os) const {
  os << "rnnkit::RNN(cell=" << options.cell() << ", input_size=" << options.input_size()
     << ", hidden_size=" << options.hidden_size() << ", num_layers=" << options.num_layers()
     << ", bidirectional=" << (options.bidirectional() ? "true" : "false")
     << ", dropout=" << options.dropout() << ", recurrent_dropout=" << options.recurrent_dropout()
     << ", batch_first=" << (options.batch_first() ? "true" : "false")
     << ", init=" << to_string(options.init()) << ")";
}

RNNOutput RNNImpl::forward(const Tensor& input, const Tensor& lengths,
                           const std::vector<State>& initial_state) {
  const char* who = "rnnkit::RNN";
  const Tensor x = detail::to_time_major(input, options.batch_first(), options.input_size(), who);
  const detail::SequenceMask mask = detail::make_sequence_mask(x, lengths, who);
  const int64_t L = options.num_layers(), K = num_directions();
  TORCH_CHECK(initial_state.empty() || static_cast<int64_t>(initial_state.size()) == L * K, who,
              ": expected ", L * K, " initial states (num_layers * directions), got ",
              initial_state.size());

  RNNOutput out;
  out.states.reserve(L * K);
  Tensor h = x;
  for (int64_t l = 0; l < L; ++l) {
    std::vector<Tensor> per_direction;
    for (int64_t d = 0; d < K; ++d) {
      const int64_t i = l * K + d;
      auto r = layers_[i]->forward_time_major(h, mask,
                                              initial_state.empty() ? State{} : initial_state[i]);
      per_direction.push_back(std::move(r.output));
      out.states.push_back(std::move(r.state));
    }
    h = K == 1 ? per_direction[0] : torch::cat(per_direction, 2);
    // Between layers only: never after the last layer, never on the recurrent connection.
    if (l + 1 < L && options.dropout() > 0.0) {
      h = torch::dropout(h, options.dropout(), is_training());
    }
  }
  out.output = options.batch_first() ? h.transpose(0, 1) : h;
  return out;
}

}  // namespace rnnkit

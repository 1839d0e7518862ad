#include "rnnkit/rnn.h"

#include <cstdlib>
#include <ostream>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include "detail/concurrent_directions.h"

namespace rnnkit {

using detail::Direction;
using detail::run_concurrently;
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
      // The options whole, at this layer's input; forward() hands the layers time-major input.
      auto layer = RecurrentLayer(
          RecurrentOptions(RNNOptions(options).input_size(in).batch_first(false)).reverse(d == 1));
      const std::string name = "l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      layers_.push_back(register_module(name, layer));
    }
  }
}

void RNNImpl::reset_parameters() {
  for (auto& layer : layers_) layer->reset_parameters();
}

bool RNNImpl::concurrent() const {
  if (!options.bidirectional()) return false;
  if (options.concurrent_directions().has_value()) return *options.concurrent_directions();
  // The apps' models take the default; this lets a user compare without rebuilding.
  static const char* env = std::getenv("RNNKIT_CONCURRENT_DIRECTIONS");
  if (env != nullptr && std::string(env) == "0") return false;
  return at::get_num_threads() > 1;
}

void RNNImpl::pretty_print(std::ostream& os) const {
  os << "rnnkit::RNN(cell=" << cell_label(options.cell(), options.cell_options())
     << ", input_size=" << options.input_size() << ", hidden_size=" << options.hidden_size()
     << ", num_layers=" << options.num_layers()
     << ", bidirectional=" << (options.bidirectional() ? "true" : "false")
     << ", dropout=" << options.dropout()
     << (options.variational_dropout() ? ", variational_dropout=true" : "")
     << ", recurrent_dropout=" << options.recurrent_dropout()
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
  const bool together = K == 2 && concurrent() && x.device().is_cpu();
  auto initial = [&](int64_t i) { return initial_state.empty() ? State{} : initial_state[i]; };
  for (int64_t l = 0; l < L; ++l) {
    std::vector<Tensor> per_direction;
    if (together) {
      // The dropout masks are drawn here, in the sequential path's order, so that a seed gives
      // the same numbers either way.
      Direction f{layers_[l * K], initial(l * K), {}};
      Direction b{layers_[l * K + 1], initial(l * K + 1), {}};
      f.drop = f.layer->draw_dropout_mask(x.size(1), x.options());
      b.drop = b.layer->draw_dropout_mask(x.size(1), x.options());
      auto [rf, rb] = run_concurrently(f, b, h, mask);
      per_direction = {rf.output, rb.output};
      out.states.push_back(std::move(rf.state));
      out.states.push_back(std::move(rb.state));
    } else {
      for (int64_t d = 0; d < K; ++d) {
        auto r = layers_[l * K + d]->forward_time_major(h, mask, initial(l * K + d));
        per_direction.push_back(std::move(r.output));
        out.states.push_back(std::move(r.state));
      }
    }
    h = K == 1 ? per_direction[0] : torch::cat(per_direction, 2);
    // Between layers only: never after the last layer, never on the recurrent connection.
    if (l + 1 < L && options.dropout() > 0.0) {
      h = options.variational_dropout() ? variational_dropout(h, options.dropout(), is_training())
                                        : torch::dropout(h, options.dropout(), is_training());
    }
  }
  out.output = options.batch_first() ? h.transpose(0, 1) : h;
  return out;
}

}  // namespace rnnkit

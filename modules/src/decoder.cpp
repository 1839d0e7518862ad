#include "rnnkit/decoder.h"

#include <algorithm>
#include <cmath>

#include <c10/util/Exception.h>

namespace rnnkit {

using torch::Tensor;

DecoderState DecoderState::index_select(const Tensor& index) const {
  auto pick = [&](const Tensor& t) { return t.defined() ? t.index_select(0, index) : t; };
  DecoderState out;
  for (const auto& s : layers) out.layers.push_back({pick(s.a), pick(s.c)});
  out.feed = pick(feed);
  return out;
}

AttentionDecoderImpl::AttentionDecoderImpl(DecoderOptions options_) : options(std::move(options_)) {
  reset();
}

void AttentionDecoderImpl::reset() {
  auto& o = options;
  const std::string& kind = o.attention();
  TORCH_CHECK(kind == "additive" || kind == "dot" || kind == "general" || kind == "none",
              "AttentionDecoder: expected attention \"additive\", \"dot\", \"general\" or "
              "\"none\", got \"",
              kind, "\"");
  TORCH_CHECK(!o.input_feeding() || kind == "dot" || kind == "general",
              "AttentionDecoder: input_feeding needs attention \"dot\" or \"general\" (the "
              "additive decoder feeds its context already), got \"",
              kind, "\"");
  TORCH_CHECK(o.memory_size() > 0, "AttentionDecoder: expected memory_size > 0, got ",
              o.memory_size());
  TORCH_CHECK(o.rnn().input_size() > 0, "AttentionDecoder: expected rnn.input_size > 0, got ",
              o.rnn().input_size());
  TORCH_CHECK(!o.rnn().bidirectional(), "AttentionDecoder: a decoder runs forward only");
  TORCH_CHECK(o.rnn().recurrent_dropout() == 0,
              "AttentionDecoder: recurrent_dropout is not supported in a decoder, got ",
              o.rnn().recurrent_dropout());
  const int64_t H = o.rnn().hidden_size(), Dh = o.memory_size();
  const int64_t extra = (kind == "additive" ? Dh : 0) + (o.input_feeding() ? H : 0);
  RNNOptions r = o.rnn();
  r.input_size(o.rnn().input_size() + extra).batch_first(false);
  rnn = register_module("rnn", RNN(r));
  if (kind == "none") {
    attention = nullptr;
    W_c = Tensor();
    return;
  }
  attention = make_attention(kind, AttentionOptions(H, Dh));
  register_module("attention", attention);
  W_c = register_parameter("W_c", torch::empty({H, Dh + H}));
  torch::NoGradGuard g;
  const double k = 1.0 / std::sqrt(static_cast<double>(Dh + H));
  W_c.uniform_(-k, k);
}

void AttentionDecoderImpl::pretty_print(std::ostream& os) const {
  os << "rnnkit::AttentionDecoder(cell=" << options.rnn().cell()
     << ", input_size=" << options.rnn().input_size()
     << ", hidden_size=" << options.rnn().hidden_size()
     << ", num_layers=" << options.rnn().num_layers() << ", attention=" << options.attention()
     << ", input_feeding=" << (options.input_feeding() ? "true" : "false") << ")";
}

bool AttentionDecoderImpl::parallel_over_time() const {
  return options.attention() != "additive" && !options.input_feeding();
}

AttentionMemory AttentionDecoderImpl::memory(const Tensor& h, const Tensor& lengths) const {
  if (attention) return attention->memory(h, lengths);
  TORCH_CHECK(h.dim() == 3, "AttentionDecoder: expected h [S, B, Dh], got ", h.sizes());
  AttentionMemory m;
  m.values = h.transpose(0, 1);
  m.mask = lengths.defined() ? length_mask(lengths, h.size(0), h)
                             : torch::ones({h.size(1), h.size(0)}, h.options().dtype(torch::kBool));
  return m;
}

DecoderOutput AttentionDecoderImpl::step(const Tensor& y, DecoderState& state,
                                         const AttentionMemory& m) {
  const int64_t L = options.rnn().num_layers(), H = options.rnn().hidden_size();
  TORCH_CHECK(y.dim() == 2 && y.size(1) == options.rnn().input_size(),
              "AttentionDecoder: expected y<t> [B, ", options.rnn().input_size(), "], got ",
              y.sizes());
  if (state.layers.empty()) state.layers.resize(static_cast<size_t>(L));
  TORCH_CHECK(static_cast<int64_t>(state.layers.size()) == L, "AttentionDecoder: expected ", L,
              " layer states, got ", state.layers.size());
  const bool additive = options.attention() == "additive";
  Tensor x = y;
  AttentionOutput att;
  if (additive) {
    const Tensor& s_prev = state.layers.back().a;
    const Tensor q = s_prev.defined() ? s_prev : torch::zeros({y.size(0), H}, y.options());
    att = attention->attend(q, m);        // c<t> [B, Dh], α [B, S]
    x = torch::cat({y, att.context}, 1);  // [B, E + Dh]
  }
  if (options.input_feeding()) {
    const Tensor feed =
        state.feed.defined() ? state.feed : torch::zeros({y.size(0), H}, y.options());
    x = torch::cat({x, feed}, 1);  // [B, E + H]
  }
  for (int64_t l = 0; l < L; ++l) {
    auto& s = state.layers[static_cast<size_t>(l)];
    s = rnn->cell(l, 0).step(x, s);  // s[l]<t>
    x = l + 1 < L ? torch::dropout(s.a, options.rnn().dropout(), is_training()) : s.a;
  }
  if (!attention) return {x, {}};                // h̃<t> = s[L]<t>
  if (!additive) att = attention->attend(x, m);  // c<t> from s[L]<t>
  const Tensor ht = torch::tanh(torch::linear(torch::cat({att.context, x}, 1), W_c));  // [B, H]
  if (options.input_feeding()) state.feed = ht;
  return {ht, att.weights};
}

DecoderOutput AttentionDecoderImpl::forward(const Tensor& y, DecoderState state,
                                            const AttentionMemory& m) {
  TORCH_CHECK(y.dim() == 3, "AttentionDecoder: expected y [T, B, E], got ", y.sizes());
  if (parallel_over_time()) {
    auto out = rnn->forward(y, {}, state.layers);  // s[L]<1..T> [T, B, H]
    if (!attention) return {out.output, {}};
    auto att = attention->attend_all(out.output, m);  // c [T, B, Dh], α [T, B, S]
    return {torch::tanh(torch::linear(torch::cat({att.context, out.output}, 2), W_c)), att.weights};
  }
  std::vector<Tensor> outs, weights;
  for (const auto& y_t : y.unbind(0)) {
    auto o = step(y_t, state, m);
    outs.push_back(o.output);
    if (o.weights.defined()) weights.push_back(o.weights);
  }
  return {torch::stack(outs), weights.empty() ? Tensor() : torch::stack(weights)};
}

// ---- bridge ----

BridgeImpl::BridgeImpl(BridgeOptions options_) : options(std::move(options_)) { reset(); }

void BridgeImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.encoder_layers() > 0 && o.decoder_layers() > 0 && o.encoder_hidden() > 0 &&
                  o.decoder_hidden() > 0 &&
                  (o.encoder_directions() == 1 || o.encoder_directions() == 2),
              "Bridge: expected positive layers and sizes and 1 or 2 directions, got encoder ",
              o.encoder_layers(), "x", o.encoder_directions(), "x", o.encoder_hidden(),
              ", decoder ", o.decoder_layers(), "x", o.decoder_hidden());
  W.clear();
  b.clear();
  W_cell.clear();
  b_cell.clear();
  const int64_t in = o.encoder_directions() * o.encoder_hidden(), out = o.decoder_hidden();
  const double k = 1.0 / std::sqrt(static_cast<double>(in));
  torch::NoGradGuard g;
  for (int64_t l = 0; l < o.decoder_layers(); ++l) {
    const auto n = std::to_string(l);
    W.push_back(register_parameter("W" + n, torch::empty({out, in}).uniform_(-k, k)));
    b.push_back(register_parameter("b" + n, torch::empty({out}).uniform_(-k, k)));
    if (o.decoder_memory_cell()) {
      W_cell.push_back(register_parameter("W_cell" + n, torch::empty({out, in}).uniform_(-k, k)));
      b_cell.push_back(register_parameter("b_cell" + n, torch::empty({out}).uniform_(-k, k)));
    }
  }
}

void BridgeImpl::pretty_print(std::ostream& os) const {
  const auto& o = options;
  os << "rnnkit::Bridge(encoder=" << o.encoder_layers() << "x" << o.encoder_directions() << "x"
     << o.encoder_hidden() << ", decoder=" << o.decoder_layers() << "x" << o.decoder_hidden()
     << ", memory_cell=" << (o.decoder_memory_cell() ? "true" : "false") << ")";
}

int64_t BridgeImpl::source_layer(int64_t l) const {
  const int64_t Le = options.encoder_layers(), Ld = options.decoder_layers();
  return std::max<int64_t>(0, Le - Ld + l);
}

std::vector<State> BridgeImpl::forward(const std::vector<State>& enc) {
  const int64_t K = options.encoder_directions();
  TORCH_CHECK(static_cast<int64_t>(enc.size()) == options.encoder_layers() * K, "Bridge: expected ",
              options.encoder_layers() * K, " encoder states, got ", enc.size());
  std::vector<State> out;
  for (int64_t l = 0; l < options.decoder_layers(); ++l) {
    const auto i = static_cast<size_t>(l);
    const int64_t src = source_layer(l) * K;
    std::vector<Tensor> a, c;
    for (int64_t d = 0; d < K; ++d) {
      a.push_back(enc[static_cast<size_t>(src + d)].a);
      c.push_back(enc[static_cast<size_t>(src + d)].c);
    }
    State s;
    s.a = torch::tanh(torch::linear(torch::cat(a, 1), W[i], b[i]));  // s[l]<0> [B, H_d]
    if (options.decoder_memory_cell()) {
      s.c = c[0].defined() ? torch::linear(torch::cat(c, 1), W_cell[i], b_cell[i])
                           : torch::zeros_like(s.a);
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace rnnkit

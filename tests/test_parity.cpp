// Parity with torch::nn after a weight mapping (docs/equations.md), in float64: outputs, final
// states and every parameter's gradient agree to 1e-10. Variable lengths use torch's packed
// sequences as the reference.
#include "test_util.h"

#include <rnnkit/torch_nn.h>

using namespace rnnkit;
using rnnkit_test::max_abs_diff;
using torch::Tensor;

namespace {

constexpr double kTol = 1e-10;

/// One of our gates and the block of torch's fused weights it comes from.
struct GateMap {
  const char* W;
  const char* b;
  int64_t gate;       // row block of torch's weight_ih / weight_hh
  double sign;        // -1 for the GRU update gate: Γu = 1 - z = σ(-(...))
  bool ih_bias_only;  // the GRU candidate: b_c = b_in, and b_hn goes to b_cc
};

const std::vector<GateMap>& gate_maps(const std::string& cell) {
  static const std::vector<GateMap> rnn{{"W_a", "b_a", 0, 1, false}};
  static const std::vector<GateMap> lstm{{"W_u", "b_u", 0, 1, false},
                                         {"W_f", "b_f", 1, 1, false},
                                         {"W_c", "b_c", 2, 1, false},
                                         {"W_o", "b_o", 3, 1, false}};
  static const std::vector<GateMap> gru{
      {"W_r", "b_r", 0, 1, false}, {"W_u", "b_u", 1, -1, false}, {"W_c", "b_c", 2, 1, true}};
  if (cell == "lstm") return lstm;
  if (cell == "gru_reset_after") return gru;
  return rnn;
}

struct TorchParams {
  Tensor W_ih, W_hh, b_ih, b_hh;
};

TorchParams torch_params(torch::nn::Module& m, int64_t l, int64_t d) {
  const std::string sfx = std::to_string(l) + (d == 1 ? "_reverse" : "");
  auto p = m.named_parameters();
  return {p["weight_ih_l" + sfx], p["weight_hh_l" + sfx], p["bias_ih_l" + sfx],
          p["bias_hh_l" + sfx]};
}

std::map<std::string, Tensor> cell_params(RNNImpl& ours, int64_t l, int64_t d) {
  std::map<std::string, Tensor> out;
  for (const auto& kv : ours.cell(l, d).named_parameters()) out[kv.key()] = kv.value();
  return out;
}

void copy_weights(torch::nn::Module& theirs, RNNImpl& ours, const std::string& cell) {
  torch::NoGradGuard no_grad;
  const int64_t H = ours.options.hidden_size();
  for (int64_t l = 0; l < ours.options.num_layers(); ++l) {
    for (int64_t d = 0; d < ours.num_directions(); ++d) {
      auto t = torch_params(theirs, l, d);
      auto p = cell_params(ours, l, d);
      for (const auto& g : gate_maps(cell)) {
        auto rows = [&](const Tensor& w) { return w.narrow(0, g.gate * H, H); };
        p[g.W].copy_(g.sign * torch::cat({rows(t.W_hh), rows(t.W_ih)}, 1));
        if (g.ih_bias_only) {
          p[g.b].copy_(rows(t.b_ih));
          p.at("b_cc").copy_(rows(t.b_hh));
        } else {
          p[g.b].copy_(g.sign * (rows(t.b_ih) + rows(t.b_hh)));
        }
      }
    }
  }
}

void expect_same_grads(torch::nn::Module& theirs, RNNImpl& ours, const std::string& cell) {
  const int64_t H = ours.options.hidden_size();
  for (int64_t l = 0; l < ours.options.num_layers(); ++l) {
    for (int64_t d = 0; d < ours.num_directions(); ++d) {
      auto t = torch_params(theirs, l, d);
      auto p = cell_params(ours, l, d);
      const int64_t in = t.W_ih.size(1);
      for (const auto& g : gate_maps(cell)) {
        auto rows = [&](const Tensor& w) { return g.sign * w.grad().narrow(0, g.gate * H, H); };
        const Tensor dW = p[g.W].grad();
        EXPECT_LE(max_abs_diff(dW.narrow(1, 0, H), rows(t.W_hh)), kTol) << g.W << " l" << l << d;
        EXPECT_LE(max_abs_diff(dW.narrow(1, H, in), rows(t.W_ih)), kTol) << g.W << " l" << l << d;
        EXPECT_LE(max_abs_diff(p[g.b].grad(), rows(t.b_ih)), kTol) << g.b << " l" << l << d;
        const Tensor& hh_bias = g.ih_bias_only ? p.at("b_cc") : p[g.b];
        EXPECT_LE(max_abs_diff(hh_bias.grad(), rows(t.b_hh)), kTol) << g.b << " (hh) l" << l << d;
      }
    }
  }
}

struct Result {
  Tensor out, h, c;
};

// torch::nn's three modules take and return their states differently; these put them in one
// shape. With lengths, the input goes through pack_padded_sequence (enforce_sorted = false).
template <class M>
Result run_packed_or_padded(M& m, const Tensor& x, const Tensor& lengths, const Tensor& h0) {
  namespace rnnu = torch::nn::utils::rnn;
  Result r;
  if (!lengths.defined()) {
    std::tie(r.out, r.h) = m->forward(x, h0);
    return r;
  }
  auto packed = rnnu::pack_padded_sequence(x, lengths, false, false);
  auto [pout, h] = m->forward_with_packed_input(packed, h0);
  r.out = std::get<0>(rnnu::pad_packed_sequence(pout, false, 0.0, x.size(0)));
  r.h = h;
  return r;
}

Result run_lstm(torch::nn::LSTM& m, const Tensor& x, const Tensor& lengths, const Tensor& h0,
                const Tensor& c0) {
  namespace rnnu = torch::nn::utils::rnn;
  Result r;
  torch::optional<std::tuple<Tensor, Tensor>> hc;
  if (h0.defined()) hc = std::make_tuple(h0, c0);
  if (!lengths.defined()) {
    auto [out, state] = m->forward(x, hc);
    r.out = out;
    std::tie(r.h, r.c) = state;
    return r;
  }
  auto packed = rnnu::pack_padded_sequence(x, lengths, false, false);
  auto [pout, state] = m->forward_with_packed_input(packed, hc);
  r.out = std::get<0>(rnnu::pad_packed_sequence(pout, false, 0.0, x.size(0)));
  std::tie(r.h, r.c) = state;
  return r;
}

struct Case {
  std::string cell;
  int64_t layers;
  bool bidirectional;
  bool variable_lengths;
  bool initial_state;
  bool concurrent = false;  ///< bidirectional: the two directions on two threads
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.cell << " layers=" << c.layers << " bidirectional=" << c.bidirectional
      << " variable_lengths=" << c.variable_lengths << " initial_state=" << c.initial_state
      << " concurrent=" << c.concurrent;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return c.cell + "_L" + std::to_string(c.layers) + (c.bidirectional ? "_bi" : "_uni") +
         (c.variable_lengths ? "_varlen" : "_full") + (c.initial_state ? "_h0" : "") +
         (c.concurrent ? "_concurrent" : "");
}

}  // namespace

class TorchParity : public ::testing::TestWithParam<Case> {};

TEST_P(TorchParity, OutputsStatesAndGradientsAgree) {
  const Case& c = GetParam();
  const int64_t T = 7, B = 4, D = 5, H = 6, K = c.bidirectional ? 2 : 1;
  torch::manual_seed(42);

  std::shared_ptr<torch::nn::Module> theirs;
  torch::nn::LSTM lstm{nullptr};
  torch::nn::GRU gru{nullptr};
  torch::nn::RNN rnn{nullptr};
  if (c.cell == "lstm") {
    lstm = torch::nn::LSTM(
        torch::nn::LSTMOptions(D, H).num_layers(c.layers).bidirectional(c.bidirectional));
    theirs = lstm.ptr();
  } else if (c.cell == "gru_reset_after") {
    gru = torch::nn::GRU(
        torch::nn::GRUOptions(D, H).num_layers(c.layers).bidirectional(c.bidirectional));
    theirs = gru.ptr();
  } else {
    auto o = torch::nn::RNNOptions(D, H).num_layers(c.layers).bidirectional(c.bidirectional);
    if (c.cell == "rnn_relu") o.nonlinearity(torch::kReLU);
    rnn = torch::nn::RNN(o);
    theirs = rnn.ptr();
  }
  theirs->to(torch::kDouble);
  auto ours = RNN(RNNOptions(c.cell, D, H)
                      .num_layers(c.layers)
                      .bidirectional(c.bidirectional)
                      .concurrent_directions(c.concurrent));
  ours->to(torch::kDouble);
  copy_weights(*theirs, *ours, c.cell);

  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
  const Tensor lengths = c.variable_lengths ? torch::tensor({4, 7, 1, 5}, torch::kLong) : Tensor();
  Tensor h0, c0;
  if (c.initial_state) {
    h0 = torch::randn({c.layers * K, B, H}, rnnkit_test::f64());
    if (c.cell == "lstm") c0 = torch::randn({c.layers * K, B, H}, rnnkit_test::f64());
  }

  const Tensor x_theirs = x.clone().requires_grad_(true), x_ours = x.clone().requires_grad_(true);
  Result r;
  if (lstm)
    r = run_lstm(lstm, x_theirs, lengths, h0, c0);
  else if (gru)
    r = run_packed_or_padded(gru, x_theirs, lengths, h0);
  else
    r = run_packed_or_padded(rnn, x_theirs, lengths, h0);
  const auto o =
      ours->forward(x_ours, lengths, h0.defined() ? unstack_states(h0, c0) : std::vector<State>{});

  EXPECT_LE(max_abs_diff(o.output, r.out), kTol);
  EXPECT_LE(max_abs_diff(o.a_n(), r.h), kTol);
  if (r.c.defined()) {
    EXPECT_LE(max_abs_diff(o.c_n(), r.c), kTol);
  }

  rnnkit_test::weighted_sum({r.out, r.h, r.c}, 9).backward();
  rnnkit_test::weighted_sum({o.output, o.a_n(), o.c_n()}, 9).backward();
  expect_same_grads(*theirs, *ours, c.cell);
  EXPECT_LE(max_abs_diff(x_ours.grad(), x_theirs.grad()), kTol);
}

std::vector<Case> parity_cases() {
  std::vector<Case> cases;
  for (const std::string cell : {"rnn", "rnn_relu", "gru_reset_after", "lstm"}) {
    cases.push_back({cell, 1, false, false, false});
    cases.push_back({cell, 1, false, true, false});
    cases.push_back({cell, 2, false, true, true});
    cases.push_back({cell, 1, true, false, false});
    cases.push_back({cell, 1, true, true, false});
    cases.push_back({cell, 3, true, true, true});
    // The bidirectional cases again with the directions on two threads.
    cases.push_back({cell, 1, true, true, false, true});
    cases.push_back({cell, 3, true, true, true, true});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cells, TorchParity, ::testing::ValuesIn(parity_cases()), case_name);

// rnnkit::from_torch and to_torch_*: torch::nn -> rnnkit -> torch::nn keeps the original's
// outputs, final states and input gradients (float64, variable lengths, 1 and 3 layers, one and
// two directions); the weights are checked against the independent mapping above through
// TorchParity's outputs.
TEST(TorchExchange, RoundTripsLstmGruAndRnn) {
  const int64_t T = 6, B = 3, D = 4, H = 5;
  const Tensor lengths = torch::tensor({6, 2, 4}, torch::kLong);
  for (const std::string cell : {"lstm", "gru_reset_after", "rnn", "rnn_relu"}) {
    for (const auto& [layers, bidirectional] : {std::pair{1, false}, std::pair{3, true}}) {
      SCOPED_TRACE(cell + " layers=" + std::to_string(layers) +
                   " bi=" + std::to_string(bidirectional));
      torch::manual_seed(5);
      const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
      std::vector<Result> results;
      std::vector<Tensor> grads;
      auto run = [&](auto& m, auto runner) {
        const Tensor xi = x.clone().requires_grad_(true);
        Result r = runner(m, xi);
        r.out.sum().backward();
        results.push_back(r);
        grads.push_back(xi.grad());
      };
      auto ours_run = [&](RNN& ours) {
        run(ours, [&](RNN& m, const Tensor& xi) {
          auto o = m->forward(xi, lengths);
          return Result{o.output, o.a_n(), o.c_n()};
        });
      };
      if (cell == "lstm") {
        torch::nn::LSTM theirs(
            torch::nn::LSTMOptions(D, H).num_layers(layers).bidirectional(bidirectional));
        theirs->to(torch::kDouble);
        auto lstm_run = [&](torch::nn::LSTM& m, const Tensor& xi) {
          return run_lstm(m, xi, lengths, {}, {});
        };
        run(theirs, lstm_run);
        RNN ours = from_torch(theirs);
        ours_run(ours);
        auto back = to_torch_lstm(*ours);
        run(back, lstm_run);
      } else if (cell == "gru_reset_after") {
        torch::nn::GRU theirs(
            torch::nn::GRUOptions(D, H).num_layers(layers).bidirectional(bidirectional));
        theirs->to(torch::kDouble);
        auto gru_run = [&](torch::nn::GRU& m, const Tensor& xi) {
          return run_packed_or_padded(m, xi, lengths, {});
        };
        run(theirs, gru_run);
        RNN ours = from_torch(theirs);
        ours_run(ours);
        auto back = to_torch_gru(*ours);
        run(back, gru_run);
      } else {
        auto o = torch::nn::RNNOptions(D, H).num_layers(layers).bidirectional(bidirectional);
        if (cell == "rnn_relu") o.nonlinearity(torch::kReLU);
        torch::nn::RNN theirs(o);
        theirs->to(torch::kDouble);
        auto rnn_run = [&](torch::nn::RNN& m, const Tensor& xi) {
          return run_packed_or_padded(m, xi, lengths, {});
        };
        run(theirs, rnn_run);
        RNN ours = from_torch(theirs);
        EXPECT_EQ(ours->options.cell(), cell);
        ours_run(ours);
        auto back = to_torch_rnn(*ours);
        run(back, rnn_run);
      }
      ASSERT_EQ(results.size(), 3u);
      for (size_t k = 1; k < 3; ++k) {
        EXPECT_LE(max_abs_diff(results[k].out, results[0].out), 1e-12) << k;
        EXPECT_LE(max_abs_diff(results[k].h, results[0].h), 1e-12) << k;
        if (cell == "lstm") EXPECT_LE(max_abs_diff(results[k].c, results[0].c), 1e-12) << k;
        EXPECT_LE(max_abs_diff(grads[k], grads[0]), 1e-12) << k;
      }
    }
  }
}

TEST(TorchExchange, CellsWithoutACounterpartAreRefusedNamingThoseThatMap) {
  for (const auto& [cell, options] :
       std::vector<std::pair<std::string, CellOptions>>{{"gru", {}},
                                                        {"gru_simple", {}},
                                                        {"lstm", {{"peephole", true}}},
                                                        {"lstm_peephole", {}}}) {
    RNN rnn(RNNOptions(cell, 3, 4).cell_options(options));
    rnnkit_test::expect_message<c10::ValueError>(
        [&] { torch_counterpart(*rnn); },
        {"has no torch::nn counterpart", "the cells that map are lstm, gru_reset_after"});
  }
  RNN lstm(RNNOptions("lstm", 3, 4));
  rnnkit_test::expect_message<c10::ValueError>([&] { to_torch_gru(*lstm); },
                                               {"maps onto torch::nn::LSTM"});
  RNN dropped(RNNOptions("lstm", 3, 4).recurrent_dropout(0.2));
  rnnkit_test::expect_message<c10::ValueError>([&] { to_torch_lstm(*dropped); },
                                               {"recurrent_dropout"});
  RNN gru(RNNOptions("gru", 3, 4).cell_options({{"reset_after", true}}));
  EXPECT_EQ(torch_counterpart(*gru), "gru_reset_after");
  EXPECT_NO_THROW(to_torch_gru(*gru));
}

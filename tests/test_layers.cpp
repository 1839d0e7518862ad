// Layers: padding, reverse direction, batch_first, initial states, dropout placement and the
// variational recurrent dropout.
#include <sstream>

#include "test_util.h"

using namespace rnnkit;
using rnnkit_test::max_abs_diff;
using torch::Tensor;

class EveryCellLayer : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryCellLayer, PaddedBatchEqualsEachSequenceAlone) {
  torch::manual_seed(21);
  const int64_t T = 6, D = 3, H = 4;
  const std::vector<int64_t> lens{5, 2, 4};
  const int64_t B = static_cast<int64_t>(lens.size());
  auto rnn = RNN(RNNOptions(GetParam(), D, H).num_layers(2).bidirectional(true));
  rnn->to(torch::kDouble);
  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor R = torch::randn({T, B, 2 * H}, rnnkit_test::f64());

  auto batch = rnn->forward(x, torch::tensor(lens, torch::kLong));
  (batch.output * R).sum().backward();
  std::vector<Tensor> batch_grads;
  for (auto& p : rnn->parameters())
    batch_grads.push_back(p.grad().clone()), p.mutable_grad().zero_();

  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = lens[b];
    const Tensor xb = x.detach().narrow(0, 0, L).narrow(1, b, 1).clone().requires_grad_(true);
    auto alone = rnn->forward(xb);
    (alone.output * R.narrow(0, 0, L).narrow(1, b, 1)).sum().backward();  // grads accumulate
    EXPECT_LE(max_abs_diff(batch.output.narrow(0, 0, L).narrow(1, b, 1), alone.output), 1e-12);
    EXPECT_EQ(batch.output.narrow(0, L, T - L).narrow(1, b, 1).abs().sum().item<double>(), 0.0)
        << "output past the length must be zero";
    for (size_t i = 0; i < batch.states.size(); ++i) {
      EXPECT_LE(max_abs_diff(batch.states[i].a.narrow(0, b, 1), alone.states[i].a), 1e-12);
      if (alone.states[i].c.defined()) {
        EXPECT_LE(max_abs_diff(batch.states[i].c.narrow(0, b, 1), alone.states[i].c), 1e-12);
      }
    }
    EXPECT_LE(max_abs_diff(x.grad().narrow(0, 0, L).narrow(1, b, 1), xb.grad()), 1e-12);
    EXPECT_EQ(x.grad().narrow(0, L, T - L).narrow(1, b, 1).abs().sum().item<double>(), 0.0);
  }
  auto params = rnn->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_LE(max_abs_diff(params[i].grad(), batch_grads[i]), 1e-12);
  }
}

INSTANTIATE_TEST_SUITE_P(Cells, EveryCellLayer, ::testing::ValuesIn(rnnkit_test::all_cells()),
                         rnnkit_test::param_name);

// FORWARD_HAS_DEFAULT_ARGS: with the input alone, inside Sequential and AnyModule, each module
// gives what its forward gives with the defaults.
TEST(Layers, WorkInsideSequentialAndAnyModuleWithTheInputAlone) {
  torch::manual_seed(4);
  auto rnn = RNN(RNNOptions("gru", 3, 4).num_layers(2).bidirectional(true));
  auto layer = RecurrentLayer("lstm", 3, 4);
  auto cell = LSTMCell(LSTMCellOptions(3, 4));
  const Tensor x = torch::randn({5, 2, 3});
  torch::nn::Sequential seq(rnn);
  EXPECT_TRUE(seq->forward<RNNOutput>(x).output.equal(rnn->forward(x).output));
  torch::nn::AnyModule any_layer(layer);
  EXPECT_TRUE(any_layer.forward<RecurrentOutput>(x).output.equal(layer->forward(x).output));
  torch::nn::AnyModule any_cell(cell);
  EXPECT_TRUE(any_cell.forward<State>(x[0]).a.equal(cell->forward(x[0]).a));
  // The older name is the same type.
  static_assert(std::is_same_v<Recurrent, RecurrentLayer>);
}

TEST(Layers, ReverseStartsAtTheLastRealToken) {
  torch::manual_seed(22);
  auto layer = RecurrentLayer(RecurrentOptions("lstm", 3, 4).reverse(true));
  layer->to(torch::kDouble);
  const Tensor x = torch::randn({6, 2, 3}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({3, 6}, torch::kLong);
  auto out = layer->forward(x, lengths);
  for (int64_t b = 0; b < 2; ++b) {
    const int64_t last = lengths[b].item<int64_t>() - 1;
    // The first step of the reverse pass reads the last real token from a zero state.
    const State first = layer->cell->step(x[last].narrow(0, b, 1), {});
    EXPECT_LE(max_abs_diff(out.output[last].narrow(0, b, 1), first.a), 1e-12);
    // Its last step is at t = 0, and that is the final state.
    EXPECT_LE(max_abs_diff(out.output[0].narrow(0, b, 1), out.state.a.narrow(0, b, 1)), 1e-12);
  }
}

TEST(Layers, BatchFirstIsATranspose) {
  torch::manual_seed(23);
  auto tm = RNN(RNNOptions("gru", 3, 4).num_layers(2).bidirectional(true));
  auto bf = RNN(RNNOptions("gru", 3, 4).num_layers(2).bidirectional(true).batch_first(true));
  rnnkit_test::copy_params(*tm, *bf);
  const Tensor x = torch::randn({5, 2, 3});
  const Tensor lengths = torch::tensor({2, 5}, torch::kLong);
  auto a = tm->forward(x, lengths);
  auto b = bf->forward(x.transpose(0, 1).contiguous(), lengths);
  EXPECT_EQ(b.output.sizes(), (std::vector<int64_t>{2, 5, 8}));
  EXPECT_LE(max_abs_diff(a.output, b.output.transpose(0, 1)), 1e-6);
  EXPECT_LE(max_abs_diff(a.a_n(), b.a_n()), 1e-6);
}

TEST(Layers, InitialStateIsTheStartingPoint) {
  torch::manual_seed(24);
  auto layer = RecurrentLayer("lstm", 3, 4);
  layer->to(torch::kDouble);
  const Tensor x = torch::randn({5, 2, 3}, rnnkit_test::f64());
  State s{torch::randn({2, 4}, rnnkit_test::f64()), torch::randn({2, 4}, rnnkit_test::f64())};
  auto out = layer->forward(x, {}, s);
  for (const auto& x_t : x.unbind(0)) s = layer->cell->step(x_t, s);
  EXPECT_LE(max_abs_diff(out.state.a, s.a), 1e-12);
  EXPECT_LE(max_abs_diff(out.state.c, s.c), 1e-12);
}

TEST(Layers, DropoutActsBetweenLayersOnly) {
  torch::manual_seed(25);
  const Tensor x = torch::randn({6, 3, 4});
  // One layer: nothing lies between layers, so training mode changes nothing.
  auto one = RNN(RNNOptions("lstm", 4, 5).dropout(0.5));
  one->train();
  auto t1 = one->forward(x);
  one->eval();
  EXPECT_EQ(max_abs_diff(t1.output, one->forward(x).output), 0.0);

  // Two layers: the first layer's own recurrence is untouched (no dropout on a<t-1>), the
  // second sees a dropped input.
  auto two = RNN(RNNOptions("lstm", 4, 5).num_layers(2).dropout(0.5));
  two->eval();
  auto ev = two->forward(x);
  EXPECT_EQ(max_abs_diff(ev.output, two->forward(x).output), 0.0) << "eval is deterministic";
  two->train();
  auto tr = two->forward(x);
  EXPECT_EQ(max_abs_diff(tr.states[0].a, ev.states[0].a), 0.0);
  EXPECT_GT(max_abs_diff(tr.output, ev.output), 1e-3);
}

TEST(Layers, VariationalDropoutUsesOneMaskPerSequence) {
  // For the LSTM and the vanilla RNN, a<t-1> enters only the recurrent product, so feeding the
  // plain step a<t-1> * mask is exactly the variational form.
  for (const std::string cell : {"lstm", "rnn"}) {
    const int64_t T = 8, B = 3, D = 2, H = 5;
    const double p = 0.4;
    auto layer = RecurrentLayer(RecurrentOptions(RNNOptions(cell, D, H).recurrent_dropout(p)));
    layer->to(torch::kDouble);
    layer->train();
    const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
    torch::manual_seed(77);
    auto out = layer->forward(x);
    torch::manual_seed(77);
    const Tensor mask = rnnkit::detail::recurrent_dropout_mask(B, H, p, x.options());
    EXPECT_GT((mask == 0).sum().item<int64_t>(), 0) << "the mask should drop something";
    State s = layer->cell->zero_state(B, x.options());
    for (int64_t t = 0; t < T; ++t) {
      s = layer->cell->step(x[t], State{s.a * mask, s.c});
      EXPECT_LE(max_abs_diff(out.output[t], s.a), 1e-12) << cell << " t=" << t;
    }
    layer->eval();
    auto plain = RecurrentLayer(RecurrentOptions(cell, D, H));
    plain->to(torch::kDouble);
    rnnkit_test::copy_params(*layer, *plain);
    EXPECT_EQ(max_abs_diff(layer->forward(x).output, plain->forward(x).output), 0.0)
        << "no dropout in eval mode";
  }
}

TEST(Layers, VariationalDropoutSharesOneMaskAcrossTime) {
  torch::manual_seed(31);
  const int64_t T = 7, B = 40, D = 30;
  const Tensor x = torch::ones({T, B, D}, rnnkit_test::f64());
  const Tensor y = variational_dropout(x, 0.25, true);
  EXPECT_EQ(y.scalar_type(), torch::kDouble);
  for (int64_t t = 1; t < T; ++t) EXPECT_EQ(max_abs_diff(y[t], y[0]), 0.0) << "t=" << t;
  // Each entry is 0 or 1 / (1 - p), and about p of them are 0.
  EXPECT_TRUE(((y == 0) | ((y - 1.0 / 0.75).abs() < 1e-15)).all().item<bool>());
  const double dropped = (y[0] == 0).to(torch::kDouble).mean().item<double>();
  EXPECT_GT(dropped, 0.15);
  EXPECT_LT(dropped, 0.35);
  // Not training, or p = 0: x itself.
  EXPECT_TRUE(variational_dropout(x, 0.25, false).is_same(x));
  EXPECT_TRUE(variational_dropout(x, 0.0, true).is_same(x));
  rnnkit_test::expect_message<c10::Error>([&] { variational_dropout(x, 1.0, true); },
                                          {"expected p in [0, 1), got 1"});
  rnnkit_test::expect_message<c10::Error>([&] { variational_dropout(x[0], 0.5, true); },
                                          {"expected x [T, B, D], got [40, 30]"});
}

TEST(Layers, VariationalDropoutBetweenLayersIsTheLayersWithOneMask) {
  const int64_t T = 6, B = 3, D = 4, H = 5;
  const double p = 0.5;
  auto rnn = RNN(RNNOptions("gru", D, H).num_layers(2).dropout(p).variational_dropout(true));
  rnn->to(torch::kDouble);
  rnn->train();
  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
  torch::manual_seed(78);
  const Tensor out = rnn->forward(x).output;
  // The same draws by hand: layer 1, one [1, B, H] mask, layer 2.
  torch::manual_seed(78);
  const Tensor h1 = rnn->layer(0, 0)->forward(x).output;
  const Tensor mask =
      torch::bernoulli(torch::full({1, B, H}, 1.0 - p, rnnkit_test::f64())).div_(1.0 - p);
  EXPECT_GT((mask == 0).sum().item<int64_t>(), 0) << "the mask should drop something";
  const Tensor h2 = rnn->layer(1, 0)->forward(h1 * mask).output;
  EXPECT_LE(max_abs_diff(out, h2), 1e-14);
  std::ostringstream os;
  rnn->pretty_print(os);
  EXPECT_NE(os.str().find("variational_dropout=true"), std::string::npos) << os.str();
}

TEST(Layers, LengthsMayComeInAnyOrder) {
  torch::manual_seed(26);
  auto rnn = RNN(RNNOptions("gru", 3, 4).bidirectional(true));
  const Tensor x = torch::randn({5, 3, 3});
  auto a = rnn->forward(x, torch::tensor({2, 5, 3}, torch::kLong));
  const Tensor perm = torch::tensor({1, 2, 0}, torch::kLong);
  auto b = rnn->forward(x.index_select(1, perm), torch::tensor({5, 3, 2}, torch::kLong));
  EXPECT_LE(max_abs_diff(a.output.index_select(1, perm), b.output), 1e-6);
}

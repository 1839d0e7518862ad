// Bidirectional layers with the two directions on two threads (RNNOptions::concurrent_directions):
// the same numbers as the sequential path, forward and backward, dropout draws included.
#include <ATen/Parallel.h>

#include "test_util.h"

using namespace rnnkit;
using rnnkit_test::max_abs_diff;
using torch::Tensor;

namespace {

/// Restores LibTorch's intra-op thread count when a test is done with it.
struct ThreadCount {
  explicit ThreadCount(int n) : saved(at::get_num_threads()) { at::set_num_threads(n); }
  ~ThreadCount() { at::set_num_threads(saved); }
  int saved;
};

struct Pass {
  RNNOutput out;
  std::vector<Tensor> grads;  // every parameter's, then the input's, then the initial states'
};

/// One training-mode forward and backward of `rnn` with concurrency `on`, from seed `seed`
/// (dropout between layers and the variational masks draw from it).
Pass run(RNN& rnn, bool on, const Tensor& x, const Tensor& lengths, const std::vector<State>& h0,
         uint64_t seed) {
  rnn->options.concurrent_directions(on);
  EXPECT_EQ(rnn->concurrent(), on);
  for (auto& p : rnn->parameters()) p.mutable_grad() = Tensor();
  const Tensor xi = x.detach().clone().requires_grad_(true);
  std::vector<State> s0;
  for (const auto& s : h0) {
    s0.push_back({s.a.detach().clone().requires_grad_(true),
                  s.c.defined() ? s.c.detach().clone().requires_grad_(true) : Tensor()});
  }
  torch::manual_seed(seed);
  Pass r;
  r.out = rnn->forward(xi, lengths, s0);
  rnnkit_test::weighted_sum({r.out.output, r.out.a_n(), r.out.c_n()}, seed + 1).backward();
  for (auto& p : rnn->parameters()) r.grads.push_back(p.grad().clone());
  r.grads.push_back(xi.grad());
  for (const auto& s : s0) {
    r.grads.push_back(s.a.grad());
    if (s.c.defined()) r.grads.push_back(s.c.grad());
  }
  return r;
}

void expect_same(const Pass& a, const Pass& b, const std::string& what) {
  EXPECT_LE(max_abs_diff(a.out.output, b.out.output), 1e-12) << what;
  ASSERT_EQ(a.out.states.size(), b.out.states.size());
  for (size_t i = 0; i < a.out.states.size(); ++i) {
    EXPECT_LE(max_abs_diff(a.out.states[i].a, b.out.states[i].a), 1e-12) << what << " state " << i;
    if (a.out.states[i].c.defined()) {
      EXPECT_LE(max_abs_diff(a.out.states[i].c, b.out.states[i].c), 1e-12) << what;
    }
  }
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    ASSERT_TRUE(a.grads[i].defined() && b.grads[i].defined()) << what << ": gradient " << i;
    EXPECT_LE(max_abs_diff(a.grads[i], b.grads[i]), 1e-12) << what << ": gradient " << i;
  }
}

void same_as_sequential(const std::string& cell);

}  // namespace

class ConcurrentDirections : public ::testing::TestWithParam<std::string> {};

TEST_P(ConcurrentDirections, SameOutputsAndGradientsAsSequential) {
  // 2 threads: the caller's OpenMP team runs the pair; 4: two worker threads with 2 each.
  for (int n : {2, 4}) {
    SCOPED_TRACE(std::to_string(n) + " threads");
    ThreadCount threads(n);
    same_as_sequential(GetParam());
  }
}

INSTANTIATE_TEST_SUITE_P(Cells, ConcurrentDirections, ::testing::ValuesIn(rnnkit_test::all_cells()),
                         rnnkit_test::param_name);

namespace {
void same_as_sequential(const std::string& cell) {
  torch::manual_seed(31);
  const int64_t T = 9, B = 4, D = 3, H = 5, L = 2;
  auto rnn = RNN(
      RNNOptions(cell, D, H).num_layers(L).bidirectional(true).dropout(0.3).recurrent_dropout(0.2));
  rnn->to(torch::kDouble);
  rnn->train();
  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({9, 3, 6, 1}, torch::kLong);
  const bool memory = rnn->cell(0, 0).has_memory_cell();
  std::vector<State> h0;
  for (int64_t i = 0; i < 2 * L; ++i) {
    h0.push_back({torch::randn({B, H}, rnnkit_test::f64()),
                  memory ? torch::randn({B, H}, rnnkit_test::f64()) : Tensor()});
  }
  const Pass seq = run(rnn, false, x, lengths, h0, 7);
  const Pass con = run(rnn, true, x, lengths, h0, 7);
  expect_same(seq, con, cell + " with initial states");
  expect_same(run(rnn, false, x, lengths, {}, 8), run(rnn, true, x, lengths, {}, 8),
              cell + " from zero states");
  // A different seed draws different masks, so the comparison above is not vacuous.
  EXPECT_GT(max_abs_diff(run(rnn, true, x, lengths, h0, 9).out.output, con.out.output), 1e-6);
}
}  // namespace

TEST(ConcurrentDirectionsMode, DefaultFollowsTheThreadCount) {
  auto bi = RNN(RNNOptions("lstm", 3, 4).bidirectional(true));
  auto uni = RNN(RNNOptions("lstm", 3, 4));
  {
    ThreadCount one(1);
    EXPECT_FALSE(bi->concurrent()) << "a third thread only adds overhead with --threads 1";
  }
  {
    ThreadCount two(2);
    EXPECT_TRUE(bi->concurrent());
    EXPECT_FALSE(uni->concurrent()) << "one direction has nothing to run alongside";
    bi->options.concurrent_directions(false);
    EXPECT_FALSE(bi->concurrent());
  }
  ThreadCount one(1);
  bi->options.concurrent_directions(true);
  EXPECT_TRUE(bi->concurrent()) << "an explicit true wins (tests use it)";
}

TEST(ConcurrentDirectionsMode, ThreadCountIsRestored) {
  ThreadCount four(4);
  auto rnn = RNN(RNNOptions("gru", 3, 4).bidirectional(true).concurrent_directions(true));
  const Tensor x = torch::randn({5, 2, 3}).requires_grad_(true);
  rnn->forward(x).output.sum().backward();
  EXPECT_EQ(at::get_num_threads(), 4);
  ASSERT_TRUE(x.grad().defined());
}

TEST(ConcurrentDirectionsMode, EvalAndNoGradMatchSequential) {
  ThreadCount two(2);
  torch::manual_seed(32);
  auto rnn = RNN(RNNOptions("lstm", 3, 4).num_layers(2).bidirectional(true).dropout(0.5));
  rnn->to(torch::kDouble);
  rnn->eval();
  const Tensor x = torch::randn({6, 3, 3}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({6, 2, 4}, torch::kLong);
  torch::NoGradGuard no_grad;
  rnn->options.concurrent_directions(false);
  const Tensor seq = rnn->forward(x, lengths).output;
  rnn->options.concurrent_directions(true);
  const Tensor con = rnn->forward(x, lengths).output;
  EXPECT_LE(max_abs_diff(seq, con), 1e-12);
  EXPECT_FALSE(con.requires_grad());
}

TEST(ConcurrentDirectionsMode, FrozenWeightsStillPassTheInputGradient) {
  ThreadCount two(2);
  torch::manual_seed(33);
  auto rnn = RNN(RNNOptions("gru_reset_after", 3, 4).bidirectional(true));
  rnn->to(torch::kDouble);
  for (auto& p : rnn->parameters()) p.requires_grad_(false);
  const Tensor x = torch::randn({5, 2, 3}, rnnkit_test::f64());
  std::vector<Tensor> dx;
  for (bool on : {false, true}) {
    rnn->options.concurrent_directions(on);
    const Tensor xi = x.clone().requires_grad_(true);
    rnnkit_test::weighted_sum({rnn->forward(xi).output}, 5).backward();
    dx.push_back(xi.grad());
  }
  EXPECT_LE(max_abs_diff(dx[0], dx[1]), 1e-12);
}

TEST(ConcurrentDirectionsMode, RetainedGraphGivesTheSameGradientTwice) {
  ThreadCount two(2);
  torch::manual_seed(34);
  auto rnn = RNN(RNNOptions("lstm", 3, 4).bidirectional(true).concurrent_directions(true));
  rnn->to(torch::kDouble);
  const Tensor x = torch::randn({5, 2, 3}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor loss = rnnkit_test::weighted_sum({rnn->forward(x).output}, 6);
  loss.backward({}, /*retain_graph=*/true);
  const Tensor first = x.grad().clone();
  x.mutable_grad().zero_();
  loss.backward();
  EXPECT_LE(max_abs_diff(first, x.grad()), 1e-12);
}

TEST(ConcurrentDirectionsMode, FailureOnTheOtherThreadReachesTheCaller) {
  ThreadCount two(2);
  auto rnn = RNN(RNNOptions("lstm", 3, 4).bidirectional(true).concurrent_directions(true));
  // The reverse direction's initial state has the wrong width: its thread throws.
  std::vector<State> h0{{torch::zeros({2, 4}), torch::zeros({2, 4})},
                        {torch::zeros({2, 5}), torch::zeros({2, 5})}};
  EXPECT_THROW(rnn->forward(torch::randn({5, 2, 3}), {}, h0), c10::Error);
  EXPECT_EQ(at::get_num_threads(), 2);
}

TEST(ConcurrentDirectionsMode, GradcheckWithConcurrencyOn) {
  ThreadCount two(2);
  torch::manual_seed(35);
  auto rnn = RNN(RNNOptions("lstm", 2, 3)
                     .num_layers(2)
                     .bidirectional(true)
                     .recurrent_dropout(0.3)
                     .dropout(0.2)
                     .concurrent_directions(true));
  rnn->to(torch::kDouble);
  rnn->train();
  const Tensor x = torch::randn({8, 2, 2}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor lengths = torch::tensor({5, 8}, torch::kLong);
  auto loss = [&] {
    torch::manual_seed(99);
    auto out = rnn->forward(x, lengths);
    return rnnkit_test::weighted_sum({out.output, out.a_n(), out.c_n()}, 4);
  };
  auto vars = rnn->parameters();
  vars.push_back(x);
  rnnkit_test::gradcheck(loss, vars, "concurrent deep lstm");
}

TEST(ConcurrentDirectionsMode, InputWithoutGradientStillTrainsTheWeights) {
  // The first layer's input (embeddings frozen, or raw features) needs no gradient: the node
  // must still join the graph through the parameters.
  ThreadCount two(2);
  torch::manual_seed(36);
  auto rnn = RNN(RNNOptions("lstm", 3, 4).bidirectional(true));
  rnn->to(torch::kDouble);
  const Tensor x = torch::randn({5, 2, 3}, rnnkit_test::f64());
  std::vector<std::vector<Tensor>> grads;
  for (bool on : {false, true}) {
    rnn->options.concurrent_directions(on);
    // torch::autograd::grad, not backward: the parameters' gradients come back as results.
    const Tensor loss = rnnkit_test::weighted_sum({rnn->forward(x).output}, 7);
    ASSERT_TRUE(loss.requires_grad());
    grads.push_back(torch::autograd::grad({loss}, rnn->parameters()));
  }
  for (size_t i = 0; i < grads[0].size(); ++i) {
    EXPECT_LE(max_abs_diff(grads[0][i], grads[1][i]), 1e-12) << "parameter " << i;
  }
  for (const auto& p : rnn->parameters())
    EXPECT_FALSE(p.grad().defined()) << "grad() accumulates nothing";
}

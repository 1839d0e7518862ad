// Finite-difference gradient checks in float64 through 20+ steps: the proof that autograd's
// backpropagation through time over the unrolled equations is right.
#include "test_util.h"

using namespace rnnkit;
using torch::Tensor;

using rnnkit_test::gradcheck;

class GradCheck : public ::testing::TestWithParam<std::string> {};

TEST_P(GradCheck, ThroughTwentyStepsWithPadding) {
  torch::manual_seed(11);
  const int64_t T = 20, B = 2, D = 3, H = 4;
  auto layer = RecurrentLayer(GetParam(), D, H);
  layer->to(torch::kDouble);
  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor lengths = torch::tensor({20, 13}, torch::kLong);
  auto loss = [&] {
    auto out = layer->forward(x, lengths);
    return rnnkit_test::weighted_sum({out.output, out.state.a, out.state.c}, 3);
  };
  auto vars = layer->parameters();
  vars.push_back(x);
  gradcheck(loss, vars, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cells, GradCheck, ::testing::ValuesIn(rnnkit_test::all_cells()),
                         rnnkit_test::param_name);

TEST(GradCheckDeep, BidirectionalStackWithVariationalDropout) {
  torch::manual_seed(12);
  auto rnn = RNN(RNNOptions("lstm", 2, 3).num_layers(2).bidirectional(true).recurrent_dropout(0.3));
  rnn->to(torch::kDouble);
  rnn->train();
  const Tensor x = torch::randn({20, 2, 2}, rnnkit_test::f64()).requires_grad_(true);
  const Tensor lengths = torch::tensor({11, 20}, torch::kLong);
  auto loss = [&] {
    torch::manual_seed(99);  // the same dropout masks on every evaluation
    auto out = rnn->forward(x, lengths);
    return rnnkit_test::weighted_sum({out.output, out.a_n(), out.c_n()}, 4);
  };
  auto vars = rnn->parameters();
  vars.push_back(x);
  gradcheck(loss, vars, "deep lstm");
}

// Every cell learns a small task within a fixed step cap: delayed copy, where the target at
// step t is the input token of step t - 2. It needs memory across steps, but only a little.
#include "test_util.h"

using namespace rnnkit;
using torch::Tensor;

namespace {

struct Batch {
  Tensor x, y;  // x [T, B, V] one-hot, y [T, B] token ids (-100 where no target)
};

Batch delayed_copy(int64_t T, int64_t B, int64_t V, int64_t delay) {
  const Tensor tokens = torch::randint(V, {T, B}, torch::kLong);
  Tensor y = torch::full({T, B}, -100, torch::kLong);
  y.narrow(0, delay, T - delay).copy_(tokens.narrow(0, 0, T - delay));
  return {torch::one_hot(tokens, V).to(torch::kFloat), y};
}

}  // namespace

class Learning : public ::testing::TestWithParam<std::string> {};

TEST_P(Learning, DelayedCopyWithinAStepCap) {
  torch::manual_seed(31);
  const int64_t T = 10, B = 32, V = 4, H = 32, delay = 2, max_steps = 400;
  auto rnn = RNN(RNNOptions(GetParam(), V, H).init(Init::kXavier));
  auto head = torch::nn::Linear(H, V);
  std::vector<Tensor> params = rnn->parameters();
  for (const auto& p : head->parameters()) params.push_back(p);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(0.01));

  double accuracy = 0.0;
  int64_t step = 0;
  for (; step < max_steps && accuracy < 0.98; ++step) {
    const Batch b = delayed_copy(T, B, V, delay);
    const Tensor logits = head->forward(rnn->forward(b.x).output);
    const Tensor loss = torch::nn::functional::cross_entropy(logits.view({-1, V}), b.y.view(-1));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step % 20 == 19) {
      torch::NoGradGuard g;
      const Batch e = delayed_copy(T, 256, V, delay);
      const Tensor pred = head->forward(rnn->forward(e.x).output).argmax(-1);
      const Tensor real = e.y.ne(-100);
      accuracy = pred.eq(e.y).logical_and(real).sum().item<double>() / real.sum().item<double>();
    }
  }
  EXPECT_GE(accuracy, 0.98) << GetParam() << " after " << step << " steps";
}

INSTANTIATE_TEST_SUITE_P(Cells, Learning, ::testing::ValuesIn(rnnkit_test::all_cells()),
                         rnnkit_test::param_name);

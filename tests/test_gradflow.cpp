// apps/gradflow: the qualitative facts, on small seeded cases.
#include <torch/nn/utils/clip_grad.h>

#include "gradflow/gradflow.h"
#include "test_train_util.h"

using namespace rnnkit;

TEST(GradFlow, VanillaGradientAtTheStartIsOrdersOfMagnitudeBelowTheLstms) {
  const int64_t T = 100;
  const auto rnn = gradflow::gradient_norms({RNNOptions("rnn", 0, 0)}, T, 8, 8, 32, 1);
  const auto lstm =
      gradflow::gradient_norms({RNNOptions("lstm", 0, 0).forget_bias(1.0)}, T, 8, 8, 32, 1);
  ASSERT_EQ(rnn.da.size(), static_cast<size_t>(T));
  // The same loss on the same last step: the two start from the same kind of signal...
  EXPECT_GT(rnn.da[T - 1], 0.1);
  EXPECT_GT(lstm.da[T - 1], 0.1);
  // ...which reaches t = 1 many orders of magnitude weaker through the vanilla RNN.
  EXPECT_LT(rnn.da[0], 1e-6 * lstm.da[0]) << "rnn " << rnn.da[0] << ", lstm " << lstm.da[0];
  EXPECT_LT(rnn.dx[0], 1e-6 * lstm.dx[0]);
  // And it fades step by step: monotone towards the start, over the last half.
  for (int64_t t = T / 2; t < T - 1; ++t) EXPECT_LT(rnn.da[t - 1], rnn.da[t]) << t;
}

TEST(GradFlow, ClippingKeepsTheNormAtOrUnderItsThreshold) {
  gradflow::ExplodeOptions o;
  o.scale = 1.5;
  o.steps = 20;
  const auto wild = gradflow::explode(o);
  EXPECT_GT(wild.norm_before.front(), 100.0) << "a large recurrent init gives a large gradient";
  EXPECT_GE(wild.diverged_at, 0) << "and without clipping, training diverges";

  o.clip_norm = 1.0;
  const auto tamed = gradflow::explode(o);
  EXPECT_EQ(tamed.diverged_at, -1);
  ASSERT_EQ(tamed.norm_after.size(), 20u);
  for (size_t s = 0; s < tamed.norm_after.size(); ++s) {
    EXPECT_LE(tamed.norm_after[s], 1.0 + 1e-5) << "step " << s;
    EXPECT_TRUE(std::isfinite(tamed.loss[s]));
  }

  o.clip_norm = 0;
  o.clip_value = 0.1;
  const auto by_value = gradflow::explode(o);
  EXPECT_EQ(by_value.diverged_at, -1);
  for (double l : by_value.loss) EXPECT_TRUE(std::isfinite(l));

  // The same facts at the level of LibTorch's own clipping on any parameters.
  auto p = torch::randn({10}, torch::requires_grad());
  (p * 1e6).sum().backward();
  torch::nn::utils::clip_grad_norm_(std::vector<torch::Tensor>{p}, 2.0);
  EXPECT_LE(p.grad().norm().item<double>(), 2.0 * (1 + 1e-6));
}

TEST(GradFlow, TheAgreementTaskIsLearnableAtAShortGap) {
  // So that failures at long gaps (docs/gradflow.md) are about the gap, not a broken task.
  gradflow::AgreementOptions o;
  o.steps = 250;
  EXPECT_GE(gradflow::agreement_accuracy({RNNOptions("gru", 0, 0).forget_bias(2.0)}, 5, o), 0.95);
  EXPECT_GE(gradflow::agreement_accuracy({RNNOptions("rnn", 0, 0)}, 5, o), 0.95);
}

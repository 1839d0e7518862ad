// The CUDA path: parity with torch::nn on the GPU, and CPU-GPU agreement for every cell.
// Skipped on machines without a GPU.
#include "test_util.h"

using namespace rnnkit;
using rnnkit_test::max_abs_diff;
using torch::Tensor;

class Cuda : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(Cuda, GpuAgreesWithCpuInFloat64) {
  torch::manual_seed(41);
  auto cpu = RNN(RNNOptions(GetParam(), 5, 6).num_layers(2).bidirectional(true));
  cpu->to(torch::kDouble);
  auto gpu = std::dynamic_pointer_cast<RNNImpl>(cpu->clone(torch::Device(torch::kCUDA)));
  ASSERT_TRUE(gpu);
  const Tensor x = torch::randn({7, 3, 5}, rnnkit_test::f64());
  const Tensor lengths = torch::tensor({7, 2, 5}, torch::kLong);
  const Tensor xg = x.to(torch::kCUDA);
  auto a = cpu->forward(x, lengths);
  auto b = gpu->forward(xg, lengths.to(torch::kCUDA));
  EXPECT_EQ(b.output.device().type(), torch::kCUDA);
  EXPECT_LE(max_abs_diff(a.output, b.output.cpu()), 1e-10);
  EXPECT_LE(max_abs_diff(a.a_n(), b.a_n().cpu()), 1e-10);
  rnnkit_test::weighted_sum({a.output}, 5).backward();
  rnnkit_test::weighted_sum({b.output.cpu()}, 5).backward();
  auto pc = cpu->parameters(), pg = gpu->parameters();
  for (size_t i = 0; i < pc.size(); ++i) {
    EXPECT_LE(max_abs_diff(pc[i].grad(), pg[i].grad().cpu()), 1e-10);
  }
}

TEST(CudaParity, LstmAgreesWithTorchOnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(42);
  const int64_t D = 5, H = 6;
  auto theirs = torch::nn::LSTM(torch::nn::LSTMOptions(D, H));
  theirs->to(torch::kCUDA, torch::kDouble);
  auto ours = RNN(RNNOptions("lstm", D, H));
  ours->to(torch::kCUDA, torch::kDouble);
  {
    torch::NoGradGuard g;
    auto tp = theirs->named_parameters();
    auto& cell = ours->cell(0, 0);
    auto p = cell.named_parameters();
    const char* names[4][2] = {{"W_u", "b_u"}, {"W_f", "b_f"}, {"W_c", "b_c"}, {"W_o", "b_o"}};
    for (int64_t k = 0; k < 4; ++k) {
      auto rows = [&](const char* n) { return tp[n].narrow(0, k * H, H); };
      p[names[k][0]].copy_(torch::cat({rows("weight_hh_l0"), rows("weight_ih_l0")}, 1));
      p[names[k][1]].copy_(rows("bias_ih_l0") + rows("bias_hh_l0"));
    }
  }
  const Tensor x = torch::randn({7, 3, D}, rnnkit_test::f64().device(torch::kCUDA));
  auto [out, hc] = theirs->forward(x);
  auto mine = ours->forward(x);
  EXPECT_LE(max_abs_diff(mine.output, out), 1e-10);
  EXPECT_LE(max_abs_diff(mine.c_n(), std::get<1>(hc)), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(Cells, Cuda, ::testing::ValuesIn(rnnkit_test::all_cells()),
                         rnnkit_test::param_name);

// Mixed precision (rnnkit/precision.h, rnnkit/grad_scaler.h): under AutocastGuard(bf16) every
// cell's products run in bf16 and everything else in fp32. Each cell, forward and backward, against
// the same weights in fp32, one direction and two, two layers, variable lengths.
//
// The tolerance comes from bf16's 8-bit significand: u = 2^-8 is its relative rounding error.
// A product rounds its two inputs (error <= u each, relative) and accumulates in fp32, so a
// pre-activation z = Σ_k w_k v_k is off by about 2u·sqrt(K)·rms(w_k v_k) when the rounding
// errors are independent; the gates (sigmoid, tanh: slope <= 1) pass that on, and a recurrence
// adds such an error at each step without amplifying it much (the layers here are contractive:
// weights in ±1/sqrt(H)). With K = H + D = 24, rms(w v) <= 1/sqrt(H) and T = 7 steps through
// 2 layers that is about 2u·sqrt(24)/4·(a few steps) ≈ 3u: the outputs must stay within 8u of
// fp32 (measured: 0.15u to 1.15u). A gradient goes through twice as many products (forward and
// backward) and a relative error on a small tensor (a bias's) is larger: within 32u in the
// Frobenius norm of each tensor (measured: 1.6u to 3.2u, and 11.5u for rnn_relu in two
// directions, whose kinks flip when a pre-activation near 0 is rounded). One exception, on a
// GPU in fp16 alone: the ReLU cell's gradients within 128u (check_against_fp32 says why).
#include <cmath>

#include <torch/cuda.h>

#include <rnnkit/grad_scaler.h>
#include <rnnkit/precision.h>

#include "test_util.h"

using namespace rnnkit;
using torch::Tensor;

namespace {

constexpr double kU = 1.0 / 256;  // bf16's unit roundoff, 2^-8

struct Result {
  Tensor output, input_grad;
  std::vector<State> states;
  std::vector<Tensor> grads;
};

Result run(RNN& rnn, const Tensor& x, const Tensor& lengths, const Tensor& R, Precision p) {
  const Tensor xi = x.detach().clone().requires_grad_(true);
  rnn->zero_grad();
  RNNOutput out;
  {
    AutocastGuard autocast(p, x.device().type());
    out = rnn->forward(xi, lengths);
  }
  (out.output * R).sum().backward();  // as PyTorch: the backward outside the autocast scope
  Result r{out.output.detach(), xi.grad(), out.states, {}};
  for (const auto& q : rnn->parameters()) r.grads.push_back(q.grad().clone());
  return r;
}

double relative(const Tensor& a, const Tensor& b) {
  return (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-30);
}

struct Case {
  std::string cell;
  CellOptions options;
  bool bidirectional;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string n = info.param.cell;
  for (const auto& [k, v] : info.param.options) n += "_" + k;
  return n + (info.param.bidirectional ? "_bi" : "_uni");
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const bool bi : {false, true}) {
    // The built-in cells (lstm_peephole and gru_reset_after among them) and the example's mgu.
    for (const auto& c : rnnkit_test::all_cells()) out.push_back({c, {}, bi});
  }
  return out;
}

}  // namespace

class Bf16EveryCell : public ::testing::TestWithParam<Case> {};

/// The cell of `c` on `device` under `precision` (unit roundoff `u`) against the same weights
/// in fp32: outputs within 8u, gradients within 32u (the derivation above holds for any u);
/// the ReLU cell's gradients in fp16 alone within 128u (see below).
static void check_against_fp32(const Case& c, Precision precision, torch::Device device, double u) {
  torch::manual_seed(5);
  const int64_t T = 7, B = 4, D = 8, H = 16, K = c.bidirectional ? 2 : 1;
  auto rnn = RNN(RNNOptions(c.cell, D, H)
                     .num_layers(2)
                     .bidirectional(c.bidirectional)
                     .cell_options(c.options));
  rnn->to(device);
  const Tensor x = torch::randn({T, B, D}).to(device);
  const Tensor lengths = torch::tensor({7, 3, 5, 1}, torch::kLong).to(device);
  const Tensor R = torch::randn({T, B, K * H}).to(device);
  const Result fp32 = run(rnn, x, lengths, R, Precision::kFP32);
  const Result mixed = run(rnn, x, lengths, R, precision);

  // The products' results come back in fp32: the output and the states are fp32.
  ASSERT_EQ(mixed.output.scalar_type(), torch::kFloat);
  EXPECT_EQ(mixed.output.device().type(), device.type());  // "cuda" is cuda:0 once allocated
  for (const auto& s : mixed.states) {
    EXPECT_EQ(s.a.scalar_type(), torch::kFloat);
    if (s.c.defined()) {
      EXPECT_EQ(s.c.scalar_type(), torch::kFloat);
    }
  }
  const double out_err = (mixed.output - fp32.output).abs().max().item<double>();
  EXPECT_LE(out_err, 8 * u) << "outputs";
  // ReLU's derivative jumps from 0 to 1 at 0: a pre-activation within rounding of 0 takes the
  // other branch in the narrower run, which moves the gradients by more than a multiple of u
  // (on an H200 in fp16, rnn_relu_bi's by 2 to 4%, with 2 layers and both directions). fp16's
  // u is 8 times smaller than bf16's, so such a flip costs it more multiples of u: the ReLU
  // cell in fp16 gets 128u. Every other case (bf16 on any device, the smooth cells in fp16)
  // keeps the derived 32u.
  const bool relu_in_fp16 = c.cell == "rnn_relu" && precision == Precision::kFP16;
  const double grad_tol = (relu_in_fp16 ? 128 : 32) * u;
  EXPECT_LE(relative(mixed.input_grad, fp32.input_grad), grad_tol) << "input gradient";
  for (size_t i = 0; i < fp32.grads.size(); ++i) {
    EXPECT_EQ(mixed.grads[i].scalar_type(), torch::kFloat);
    EXPECT_LE(relative(mixed.grads[i], fp32.grads[i]), grad_tol) << "parameter " << i;
  }
  // Padding stays zero, as in fp32.
  EXPECT_EQ(mixed.output.narrow(0, 3, T - 3).select(1, 1).abs().sum().item<double>(), 0.0);
  if (c.cell == "mgu") {
    // A cell without a fast path (the example plugin's) runs its plain step in fp32: the
    // reference path is never narrowed.
    EXPECT_EQ(out_err, 0.0);
  } else {
    // Not a test that passes because nothing changed: the products did run narrower.
    EXPECT_GT(out_err, 0.0) << "the mixed run equals the fp32 run: its products were not narrowed";
  }
}

TEST_P(Bf16EveryCell, ForwardAndBackwardWithinBf16sRoundingOfFp32) {
  check_against_fp32(GetParam(), Precision::kBF16, torch::kCPU, kU);
}

INSTANTIATE_TEST_SUITE_P(Cells, Bf16EveryCell, ::testing::ValuesIn(cases()), case_name);

// The same on CUDA (skipped without a GPU): fp16, whose 11-bit significand gives u = 2^-11, and
// bf16.
class MixedEveryCellOnCuda : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(MixedEveryCellOnCuda, Fp16AndBf16WithinTheirRoundingOfFp32) {
  check_against_fp32(GetParam(), Precision::kFP16, torch::kCUDA, 1.0 / 2048);
  check_against_fp32(GetParam(), Precision::kBF16, torch::kCUDA, kU);
}

INSTANTIATE_TEST_SUITE_P(Cells, MixedEveryCellOnCuda, ::testing::ValuesIn(cases()), case_name);

TEST(Precision, NamesGuardsAndRefusals) {
  EXPECT_EQ(parse_precision("bf16"), Precision::kBF16);
  EXPECT_EQ(to_string(parse_precision("fp16")), "fp16");
  rnnkit_test::expect_message<c10::ValueError>([] { parse_precision("fp8"); },
                                               {"expected fp32, bf16 or fp16, got 'fp8'"});
  rnnkit_test::expect_message<c10::ValueError>(
      [] { AutocastGuard g(Precision::kFP16, c10::DeviceType::CPU); },
      {"fp16 is for CUDA devices only"});
  EXPECT_FALSE(autocast_dtype(c10::DeviceType::CPU).has_value());
  {
    AutocastGuard g(Precision::kBF16, c10::DeviceType::CPU);
    ASSERT_TRUE(autocast_dtype(c10::DeviceType::CPU).has_value());
    EXPECT_EQ(*autocast_dtype(c10::DeviceType::CPU), torch::kBFloat16);
    {
      AutocastGuard inner(Precision::kFP32, c10::DeviceType::CPU);  // nested: off, then back
      EXPECT_FALSE(autocast_dtype(c10::DeviceType::CPU).has_value());
    }
    EXPECT_TRUE(autocast_dtype(c10::DeviceType::CPU).has_value());
  }
  EXPECT_FALSE(autocast_dtype(c10::DeviceType::CPU).has_value());
  // float64 is left alone under autocast (gradient checks keep their precision).
  torch::manual_seed(1);
  auto rnn = RNN(RNNOptions("lstm", 3, 4));
  rnn->to(torch::kDouble);
  const Tensor x = torch::randn({5, 2, 3}, rnnkit_test::f64());
  const Tensor plain = rnn->forward(x).output;
  AutocastGuard g(Precision::kBF16, c10::DeviceType::CPU);
  const Tensor under = rnn->forward(x).output;
  EXPECT_EQ(under.scalar_type(), torch::kDouble);
  EXPECT_EQ(rnnkit_test::max_abs_diff(plain, under), 0.0);
}

// Loss scaling (rnnkit/grad_scaler.h). A power-of-two scale passes through backward and back
// without rounding anything: the unscaled gradients are bit-identical to an unscaled
// backward's, in float32 and float64, on every device the gradients are on.
TEST(GradScaler, ScalesAndUnscalesExactlyAndFindsOverflows) {
  std::vector<torch::Device> devices{torch::kCPU};
  if (torch::cuda::is_available()) devices.emplace_back(torch::kCUDA);
  for (const auto& device : devices) {
    for (const auto dtype : {torch::kFloat, torch::kDouble}) {
      SCOPED_TRACE(device.str() + " " + c10::toString(dtype));
      torch::manual_seed(5);
      auto rnn = RNN(RNNOptions("lstm", 3, 4).num_layers(2));
      rnn->to(device, dtype);
      const Tensor x = torch::randn({6, 2, 3}, torch::TensorOptions(dtype).device(device));
      auto loss = [&] { return rnn->forward(x).output.pow(2).mean(); };
      loss().backward();
      std::vector<Tensor> plain;
      for (const auto& p : rnn->parameters()) plain.push_back(p.grad().clone());

      GradScaler scaler;  // 2^16
      rnn->zero_grad();
      const Tensor l = loss();
      EXPECT_EQ(scaler.scale(l).item<double>(), l.item<double>() * 65536.0);
      scaler.scale(l).backward();
      const auto params = rnn->parameters();
      EXPECT_EQ(rnnkit_test::max_abs_diff(params[0].grad(), plain[0] * 65536.0), 0.0);
      EXPECT_FALSE(scaler.unscale_(params));
      for (size_t i = 0; i < params.size(); ++i) {
        EXPECT_EQ(rnnkit_test::max_abs_diff(params[i].grad(), plain[i]), 0.0) << i;
      }

      // One inf or NaN anywhere is an overflow; a parameter without a gradient is passed over.
      const Tensor no_grad = torch::zeros({2}, torch::TensorOptions(dtype).device(device));
      auto with = [&](double bad) {
        for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad().copy_(plain[i]);
        params.back().mutable_grad().view(-1)[1].fill_(bad);
        std::vector<Tensor> all = params;
        all.push_back(no_grad);
        return scaler.unscale_(all);
      };
      EXPECT_TRUE(with(INFINITY));
      EXPECT_TRUE(with(-INFINITY));
      EXPECT_TRUE(with(NAN));
      EXPECT_FALSE(with(1.0));
    }
  }
}

// The schedule of the scale: halved (and the count of good steps reset) on an overflow,
// doubled after growth_interval good steps, never grown into inf; state restored by load().
TEST(GradScaler, BacksOffGrowsAndRestores) {
  GradScaler s(GradScalerOptions().init_scale(1024).growth_interval(3));
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_EQ(s.growth_tracker(), 2);
  s.update(true);
  EXPECT_EQ(s.scale(), 512);
  EXPECT_EQ(s.growth_tracker(), 0);
  for (int i = 0; i < 3; ++i) s.update(false);
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_EQ(s.growth_tracker(), 0);
  s.update(false);

  GradScaler again(GradScalerOptions().init_scale(1024).growth_interval(3));
  again.load(s.scale(), s.growth_tracker());
  for (auto* g : {&s, &again}) {
    g->update(false);
    g->update(false);
  }
  EXPECT_EQ(again.scale(), s.scale());
  EXPECT_EQ(again.scale(), 2048);

  GradScaler top(GradScalerOptions().init_scale(std::ldexp(1.0, 1023)).growth_interval(1));
  top.update(false);
  EXPECT_EQ(top.scale(), std::ldexp(1.0, 1023)) << "grown into inf";

  using rnnkit_test::expect_message;
  expect_message<c10::ValueError>([] { GradScaler(GradScalerOptions().init_scale(0)); },
                                  {"init_scale that is finite and positive, got 0"});
  expect_message<c10::ValueError>([] { GradScaler(GradScalerOptions().backoff_factor(1)); },
                                  {"backoff_factor in (0, 1), got 1"});
  expect_message<c10::ValueError>([] { GradScaler(GradScalerOptions().growth_factor(0.5)); },
                                  {"growth_factor > 1, got 0.5"});
  expect_message<c10::ValueError>([] { GradScaler(GradScalerOptions().growth_interval(0)); },
                                  {"growth_interval >= 1, got 0"});
  expect_message<c10::ValueError>([&] { again.load(INFINITY, 0); },
                                  {"saved scale that is finite and positive, got inf"});
  expect_message<c10::ValueError>([&] { again.load(8, -1); },
                                  {"saved growth tracker >= 0, got -1"});
}

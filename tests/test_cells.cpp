// Cells: parameter names and shapes, fast path == plain path, step-by-step references written
// here from docs/equations.md, initialisation, printing, cloning and the registry.
#include <sstream>

#include "test_util.h"

using namespace rnnkit;
using rnnkit_test::builtin_cells;
using rnnkit_test::max_abs_diff;
using torch::Tensor;

namespace {

std::shared_ptr<CellImplBase> double_cell(const std::string& name, int64_t D, int64_t H) {
  auto cell = make_cell(name, CellSpec(D, H));
  cell->to(torch::kDouble);
  return cell;
}

State random_state(const CellImplBase& cell, int64_t B) {
  State s{torch::randn({B, cell.hidden_size()}, rnnkit_test::f64()), {}};
  if (cell.has_memory_cell()) s.c = torch::randn({B, cell.hidden_size()}, rnnkit_test::f64());
  return s;
}

std::map<std::string, Tensor> params_of(const torch::nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& kv : m.named_parameters()) out[kv.key()] = kv.value();
  return out;
}

// a [B, H] and x [B, D] through W = [W_aa | W_ax] as two separate products: an arrangement
// independent of the cells' concatenation and of their fused fast path.
Tensor affine(const Tensor& W, const Tensor& b, const Tensor& a, const Tensor& x) {
  const int64_t H = a.size(1);
  return a.mm(W.narrow(1, 0, H).t()) + x.mm(W.narrow(1, H, x.size(1)).t()) + b;
}

}  // namespace

class EveryCell : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryCell, FastPathAgreesWithPlainStepInValueAndGradient) {
  torch::manual_seed(1);
  const int64_t T = 7, B = 3, D = 4, H = 5;
  auto cell = double_cell(GetParam(), D, H);
  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
  const State s0 = random_state(*cell, B);

  std::vector<Tensor> plain, fast;
  State s = s0;
  for (const auto& x_t : x.unbind(0)) {
    s = cell->step(x_t, s);
    plain.push_back(s.a);
    if (s.c.defined()) plain.push_back(s.c);
  }
  const Unrolled u = cell->unroll(x);
  const auto gx = u.projected.unbind(0);
  s = s0;
  for (int64_t t = 0; t < T; ++t) {
    s = u.step(gx[t], s, s.a);
    fast.push_back(s.a);
    if (s.c.defined()) fast.push_back(s.c);
  }
  ASSERT_EQ(plain.size(), fast.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_LE(max_abs_diff(plain[i], fast[i]), 1e-12);

  std::vector<Tensor> g_plain, g_fast;
  rnnkit_test::weighted_sum(plain, 7).backward();
  for (auto& p : cell->parameters()) g_plain.push_back(p.grad().clone()), p.mutable_grad().zero_();
  rnnkit_test::weighted_sum(fast, 7).backward();
  for (auto& p : cell->parameters()) g_fast.push_back(p.grad().clone());
  for (size_t i = 0; i < g_plain.size(); ++i) EXPECT_LE(max_abs_diff(g_plain[i], g_fast[i]), 1e-12);
}

// Inference on one sequence (serving, sampling) takes a matrix-vector product per step instead
// of addmm; it must give what the plain step gives.
TEST_P(EveryCell, OneRowWithoutGradientAgreesWithPlainStep) {
  torch::manual_seed(2);
  const int64_t T = 6, D = 4, H = 5;
  auto cell = double_cell(GetParam(), D, H);
  const Tensor x = torch::randn({T, 1, D}, rnnkit_test::f64());
  torch::NoGradGuard no_grad;
  State plain = random_state(*cell, 1), fast = plain;
  const Unrolled u = cell->unroll(x);
  const auto gx = u.projected.unbind(0);
  for (int64_t t = 0; t < T; ++t) {
    plain = cell->step(x[t], plain);
    fast = u.step(gx[t], fast, fast.a);
    ASSERT_EQ(fast.a.sizes(), (std::vector<int64_t>{1, H}));
    EXPECT_LE(max_abs_diff(plain.a, fast.a), 1e-12) << "step " << t;
    if (plain.c.defined()) {
      EXPECT_LE(max_abs_diff(plain.c, fast.c), 1e-12) << "step " << t;
    }
  }
}

TEST_P(EveryCell, RunsInFloat64AndFloat32) {
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    auto rnn = RNN(RNNOptions(GetParam(), 3, 4).num_layers(2).bidirectional(true));
    rnn->to(dtype);
    auto out = rnn->forward(torch::randn({5, 2, 3}, torch::TensorOptions().dtype(dtype)),
                            torch::tensor({5, 3}, torch::kLong));
    EXPECT_EQ(out.output.scalar_type(), dtype);
    EXPECT_EQ(out.output.sizes(), (std::vector<int64_t>{5, 2, 8}));
    for (const auto& s : out.states) EXPECT_EQ(s.a.scalar_type(), dtype);
    EXPECT_TRUE(torch::isfinite(out.output).all().item<bool>());
  }
}

INSTANTIATE_TEST_SUITE_P(Cells, EveryCell, ::testing::ValuesIn(rnnkit_test::all_cells()),
                         rnnkit_test::param_name);

TEST(Cells, ParameterNamesAndShapesFollowDocsEquations) {
  const int64_t D = 3, H = 4;
  const std::vector<int64_t> W{H, H + D}, b{H};
  const std::map<std::string, std::map<std::string, std::vector<int64_t>>> expected{
      {"rnn", {{"W_a", W}, {"b_a", b}}},
      {"rnn_relu", {{"W_a", W}, {"b_a", b}}},
      {"gru_simple", {{"W_c", W}, {"b_c", b}, {"W_u", W}, {"b_u", b}}},
      {"gru", {{"W_r", W}, {"b_r", b}, {"W_u", W}, {"b_u", b}, {"W_c", W}, {"b_c", b}}},
      {"gru_reset_after",
       {{"W_r", W}, {"b_r", b}, {"W_u", W}, {"b_u", b}, {"W_c", W}, {"b_c", b}, {"b_cc", b}}},
      {"lstm",
       {{"W_c", W},
        {"b_c", b},
        {"W_u", W},
        {"b_u", b},
        {"W_f", W},
        {"b_f", b},
        {"W_o", W},
        {"b_o", b}}},
      {"lstm_peephole",
       {{"W_c", W},
        {"b_c", b},
        {"W_u", W},
        {"b_u", b},
        {"W_f", W},
        {"b_f", b},
        {"W_o", W},
        {"b_o", b},
        {"p_u", b},
        {"p_f", b},
        {"p_o", b}}},
  };
  for (const auto& [name, shapes] : expected) {
    auto params = params_of(*make_cell(name, CellSpec(D, H)));
    ASSERT_EQ(params.size(), shapes.size()) << name;
    for (const auto& [pname, shape] : shapes) {
      ASSERT_TRUE(params.count(pname)) << name << " lacks " << pname;
      EXPECT_EQ(params[pname].sizes(), shape) << name << "." << pname;
    }
  }
}

// Step-by-step references, one line per equation, for the cells torch::nn has no counterpart
// of. They run through the Recurrent layer, i.e. the fast path.
TEST(StepReference, SimpleGRU) {
  torch::manual_seed(2);
  const int64_t T = 9, B = 2, D = 3, H = 4;
  auto layer = RecurrentLayer("gru_simple", D, H);
  layer->to(torch::kDouble);
  auto p = params_of(*layer->cell);
  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
  const auto out = layer->forward(x);
  Tensor c = torch::zeros({B, H}, rnnkit_test::f64());
  for (int64_t t = 0; t < T; ++t) {
    const Tensor c_tilde = torch::tanh(affine(p["W_c"], p["b_c"], c, x[t]));
    const Tensor gamma_u = torch::sigmoid(affine(p["W_u"], p["b_u"], c, x[t]));
    c = gamma_u * c_tilde + (1 - gamma_u) * c;
    EXPECT_LE(max_abs_diff(out.output[t], c), 1e-12) << "t=" << t;
  }
  EXPECT_LE(max_abs_diff(out.state.a, c), 1e-12);
}

TEST(StepReference, CourseGRU) {
  torch::manual_seed(3);
  const int64_t T = 9, B = 2, D = 3, H = 4;
  auto layer = RecurrentLayer("gru", D, H);
  layer->to(torch::kDouble);
  auto p = params_of(*layer->cell);
  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
  const auto out = layer->forward(x);
  Tensor c = torch::zeros({B, H}, rnnkit_test::f64());
  for (int64_t t = 0; t < T; ++t) {
    const Tensor gamma_r = torch::sigmoid(affine(p["W_r"], p["b_r"], c, x[t]));
    const Tensor gamma_u = torch::sigmoid(affine(p["W_u"], p["b_u"], c, x[t]));
    const Tensor c_tilde = torch::tanh(affine(p["W_c"], p["b_c"], gamma_r * c, x[t]));
    c = gamma_u * c_tilde + (1 - gamma_u) * c;
    EXPECT_LE(max_abs_diff(out.output[t], c), 1e-12) << "t=" << t;
  }
}

TEST(StepReference, ResetAfterGRUDiffersFromCourseGRU) {
  // Same weights, the two forms of Γr: the results must differ (the option is not a no-op).
  torch::manual_seed(4);
  auto course = RecurrentLayer("gru", 3, 4);
  auto after = RecurrentLayer("gru_reset_after", 3, 4);
  for (const auto& kv : course->cell->named_parameters()) {
    torch::NoGradGuard g;
    after->cell->named_parameters()[kv.key()].copy_(kv.value());
  }
  {
    torch::NoGradGuard g;
    after->cell->named_parameters()["b_cc"].zero_();
  }
  const Tensor x = torch::randn({6, 2, 3});
  EXPECT_GT(max_abs_diff(course->forward(x).output, after->forward(x).output), 1e-4);
}

TEST(StepReference, PeepholeLSTM) {
  torch::manual_seed(5);
  const int64_t T = 9, B = 2, D = 3, H = 4;
  auto layer = RecurrentLayer("lstm_peephole", D, H);
  layer->to(torch::kDouble);
  auto p = params_of(*layer->cell);
  const Tensor x = torch::randn({T, B, D}, rnnkit_test::f64());
  const auto out = layer->forward(x);
  Tensor a = torch::zeros({B, H}, rnnkit_test::f64()), c = torch::zeros({B, H}, rnnkit_test::f64());
  for (int64_t t = 0; t < T; ++t) {
    const Tensor c_tilde = torch::tanh(affine(p["W_c"], p["b_c"], a, x[t]));
    const Tensor gamma_u = torch::sigmoid(affine(p["W_u"], p["b_u"], a, x[t]) + p["p_u"] * c);
    const Tensor gamma_f = torch::sigmoid(affine(p["W_f"], p["b_f"], a, x[t]) + p["p_f"] * c);
    const Tensor gamma_o = torch::sigmoid(affine(p["W_o"], p["b_o"], a, x[t]) + p["p_o"] * c);
    c = gamma_u * c_tilde + gamma_f * c;
    a = gamma_o * torch::tanh(c);
    EXPECT_LE(max_abs_diff(out.output[t], a), 1e-12) << "t=" << t;
  }
  EXPECT_LE(max_abs_diff(out.state.a, a), 1e-12);
  EXPECT_LE(max_abs_diff(out.state.c, c), 1e-12);
}

TEST(Init, SchemesHaveTheirScaleAndStructure) {
  torch::manual_seed(6);
  const int64_t D = 64, H = 128;
  const double fan_in = H + D;
  auto std_of = [](const Tensor& t) { return t.std().item<double>(); };

  auto uni = LSTMCell(LSTMCellOptions(D, H));
  const double k = 1.0 / std::sqrt(double(H));
  EXPECT_LE(uni->W_u.abs().max().item<double>(), k);
  EXPECT_NEAR(std_of(uni->W_u), k / std::sqrt(3.0), 0.05 * k);
  EXPECT_GT(uni->b_u.abs().max().item<double>(), 0.0);

  auto xav = LSTMCell(LSTMCellOptions(D, H).init(Init::kXavier));
  EXPECT_NEAR(std_of(xav->W_c), std::sqrt(1.0 / fan_in), 0.05 * std::sqrt(1.0 / fan_in));
  EXPECT_EQ(xav->b_c.abs().max().item<double>(), 0.0);

  auto he = RNNCell(RNNCellOptions(D, H).init(Init::kHe));
  EXPECT_NEAR(std_of(he->W_a), std::sqrt(2.0 / fan_in), 0.05 * std::sqrt(2.0 / fan_in));

  auto orth = GRUCell(GRUCellOptions(D, H).init(Init::kOrthogonal));
  for (const Tensor& W : {orth->W_r, orth->W_u, orth->W_c}) {
    const Tensor W_h = W.narrow(1, 0, H);
    EXPECT_LE(max_abs_diff(W_h.t().mm(W_h), torch::eye(H)), 1e-4);
  }

  auto fb = LSTMCell(LSTMCellOptions(D, H).forget_bias(1.0));
  EXPECT_EQ(fb->b_f.min().item<double>(), 1.0);
  EXPECT_EQ(fb->b_f.max().item<double>(), 1.0);

  EXPECT_EQ(parse_init("he"), Init::kHe);
  rnnkit_test::expect_error([] { parse_init("glorot"); }, {"glorot", "uniform, xavier, he"});
}

TEST(Modules, PrettyPrintIsOneInformativeLine) {
  auto str = [](const auto& m) {
    std::ostringstream os;
    m->pretty_print(os);
    return os.str();
  };
  EXPECT_EQ(str(LSTMCell(LSTMCellOptions(3, 4).peephole(true))),
            "rnnkit::LSTMCell(input_size=3, hidden_size=4, peephole=true, init=uniform)");
  EXPECT_EQ(str(RNNCell(RNNCellOptions(3, 4).activation(Activation::kReLU))),
            "rnnkit::RNNCell(input_size=3, hidden_size=4, activation=relu, init=uniform)");
  EXPECT_EQ(str(GRUCell(GRUCellOptions(3, 4).reset_after(true))),
            "rnnkit::GRUCell(input_size=3, hidden_size=4, reset_after=true, init=uniform)");
  EXPECT_EQ(str(SimpleGRUCell(3, 4)),
            "rnnkit::SimpleGRUCell(input_size=3, hidden_size=4, init=uniform)");
  EXPECT_NE(str(RecurrentLayer(RecurrentOptions("gru", 3, 4).reverse(true))).find("reverse=true"),
            std::string::npos);
  const std::string rnn = str(RNN(RNNOptions("lstm", 3, 4).num_layers(2).bidirectional(true)));
  EXPECT_NE(rnn.find("cell=lstm"), std::string::npos);
  EXPECT_NE(rnn.find("num_layers=2, bidirectional=true"), std::string::npos);
  EXPECT_EQ(rnn.find('\n'), std::string::npos);
}

TEST(Modules, CloneIsDeepAndEqual) {
  torch::manual_seed(8);
  auto rnn = RNN(RNNOptions("gru_reset_after", 3, 4).num_layers(2).bidirectional(true));
  auto copy = std::dynamic_pointer_cast<RNNImpl>(rnn->clone());
  ASSERT_TRUE(copy);
  const Tensor x = torch::randn({5, 2, 3});
  EXPECT_EQ(max_abs_diff(rnn->forward(x).output, copy->forward(x).output), 0.0);
  {
    torch::NoGradGuard g;
    for (auto& p : copy->parameters()) p.add_(1.0);
  }
  EXPECT_GT(max_abs_diff(rnn->forward(x).output, copy->forward(x).output), 0.0);
  EXPECT_EQ(rnn->named_parameters().size(), copy->named_parameters().size());
  EXPECT_TRUE(rnn->named_parameters().contains("l1_reverse.cell.b_cc"));
}

TEST(Registry, BuiltinCellsAreListedAndCountTheirProducts) {
  const std::vector<std::string> expected{
      "gru", "gru_reset_after", "gru_simple", "lstm", "lstm_peephole", "rnn", "rnn_relu"};
  const auto builtin = builtin_cell_names();
  EXPECT_EQ(builtin, expected);
  EXPECT_EQ(std::count(builtin.begin(), builtin.end(), "mgu"), 0) << "a user cell is not built in";
  const int64_t B = 5, D = 3, H = 4;
  // One [H, H + D] matrix per gate block: 4 for the LSTM, 1 for the vanilla RNN.
  EXPECT_EQ(make_cell("lstm", CellSpec(D, H))->matmul_flops_per_step(B), 2.0 * B * 4 * H * (H + D));
  EXPECT_EQ(make_cell("rnn", CellSpec(D, H))->matmul_flops_per_step(B), 2.0 * B * H * (H + D));
  EXPECT_EQ(make_cell("lstm_peephole", CellSpec(D, H))->matmul_flops_per_step(B),
            2.0 * B * 4 * H * (H + D))
      << "the peephole vectors are element-wise, not products";
}

TEST(Registry, UserCellIsUsableByNameEverywhere) {
  const auto names = cell_names();
  for (const auto& n : builtin_cells()) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
  EXPECT_TRUE(has_cell("mgu"));
  auto rnn = RNN(RNNOptions("mgu", 3, 4).num_layers(2).bidirectional(true));
  auto out = rnn->forward(torch::randn({6, 2, 3}), torch::tensor({6, 2}, torch::kLong));
  EXPECT_EQ(out.output.sizes(), (std::vector<int64_t>{6, 2, 8}));
  EXPECT_EQ(out.output[5][1].abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(rnn->named_parameters().contains("l1_reverse.cell.W_f"));
  auto copy = rnn->clone();
  EXPECT_EQ(copy->parameters().size(), rnn->parameters().size());
}

TEST(Init, ForgetBiasKeepsMemoryInEveryGatedCell) {
  auto lstm = make_cell("lstm", CellSpec(3, 4).forget_bias(2.0));
  EXPECT_EQ(lstm->named_parameters()["b_f"].min().item<double>(), 2.0);
  for (const std::string name : {"gru", "gru_simple", "gru_reset_after"}) {
    auto gru = make_cell(name, CellSpec(3, 4).forget_bias(2.0));
    const Tensor b_u = gru->named_parameters()["b_u"];
    EXPECT_EQ(b_u.max().item<double>(), -2.0) << name;
    EXPECT_EQ(b_u.min().item<double>(), -2.0) << name;
  }
}

TEST(Modules, ResetParametersRefillsInPlaceKeepingTheDtype) {
  torch::manual_seed(9);
  auto rnn = RNN(RNNOptions("lstm", 3, 4).num_layers(2).bidirectional(true).forget_bias(1.0));
  rnn->to(torch::kDouble);
  const auto before = rnn->named_parameters()["l1_reverse.cell.W_u"].clone();
  const auto* data = rnn->named_parameters()["l1_reverse.cell.W_u"].data_ptr();
  rnn->reset_parameters();
  const auto after = rnn->named_parameters()["l1_reverse.cell.W_u"];
  EXPECT_EQ(after.scalar_type(), torch::kDouble);
  EXPECT_EQ(after.data_ptr(), data) << "the same tensor, refilled";
  EXPECT_GT(max_abs_diff(before, after), 0.0);
  EXPECT_EQ(rnn->named_parameters()["l0.cell.b_f"].min().item<double>(), 1.0);
}

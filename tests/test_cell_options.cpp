// Cells' own options (rnnkit/registry.h): the variants that were names (lstm_peephole, rnn_relu,
// gru_reset_after) are aliases of a cell with an option set, and give the same cell; bad options
// fail naming the option and what was expected; the MGU example's `slim` option changes its
// equations as documented; [model.cell_options] reaches the apps.
#include "test_train_util.h"

#include <rnnkit/train/model_config.h>
#include "lm/lm.h"

using namespace rnnkit;
using rnnkit_test::expect_message;
using rnnkit_test::max_abs_diff;

namespace {

/// Builds `name` with `options` from the same seed, in float64.
std::shared_ptr<CellImplBase> seeded(const std::string& name, const CellOptions& options = {}) {
  torch::manual_seed(7);
  auto cell = make_cell(name, CellSpec(3, 4).options(options));
  cell->to(torch::kDouble);
  return cell;
}

}  // namespace

TEST(CellOptions, AliasesAreTheirCellWithTheOptionSet) {
  const std::vector<std::tuple<std::string, std::string, CellOptions>> cases = {
      {"lstm_peephole", "lstm", {{"peephole", true}}},
      {"rnn_relu", "rnn", {{"activation", "relu"}}},
      {"gru_reset_after", "gru", {{"reset_after", true}}},
  };
  const auto x = torch::randn({5, 2, 3}, torch::kDouble);
  for (const auto& [alias, cell, options] : cases) {
    auto a = seeded(alias), b = seeded(cell, options), plain = seeded(cell);
    std::ostringstream pa, pb;
    a->pretty_print(pa);
    b->pretty_print(pb);
    EXPECT_EQ(pa.str(), pb.str()) << alias;
    ASSERT_EQ(a->named_parameters().size(), b->named_parameters().size()) << alias;
    const auto ua = a->unroll(x), ub = b->unroll(x);
    State sa, sb;
    for (int64_t t = 0; t < 5; ++t) {
      sa = a->step(x[t], sa);
      sb = b->step(x[t], sb);
    }
    EXPECT_EQ(max_abs_diff(sa.a, sb.a), 0.0) << alias;
    // ...and the option does change the cell.
    std::ostringstream pp;
    plain->pretty_print(pp);
    EXPECT_NE(pp.str(), pa.str()) << alias;
    EXPECT_EQ(check_cell_options(alias, {}), check_cell_options(cell, options)) << alias;
  }
  EXPECT_TRUE(cell_option_defs("lstm_peephole").empty()) << "the alias fixes lstm's only option";
  ASSERT_EQ(cell_option_defs("lstm").size(), 1u);
  EXPECT_EQ(cell_option_defs("lstm")[0].name, "peephole");
  // Defaults are filled in.
  EXPECT_EQ(check_cell_options("rnn", {}).at("activation"), CellOptionValue("tanh"));
}

TEST(CellOptions, BadOptionsNameTheOptionAndWhatWasExpected) {
  auto fails = [](const std::string& cell, const CellOptions& o,
                  std::initializer_list<std::string> parts) {
    expect_message<CellOptionError>([&] { check_cell_options(cell, o); }, parts);
    expect_message<CellOptionError>([&] { make_cell(cell, CellSpec(2, 3).options(o)); }, parts);
  };
  fails("lstm", {{"peepole", true}},
        {"unknown option 'peepole' for cell 'lstm'", "it takes: peephole"});
  fails("gru_simple", {{"x", 1}}, {"unknown option 'x'", "it takes no options"});
  fails("lstm", {{"peephole", 1}}, {"option 'peephole' of cell 'lstm': expected a boolean, got 1"});
  fails("rnn", {{"activation", "sigmoid"}},
        {"option 'activation' of cell 'rnn': expected one of tanh, relu, got \"sigmoid\""});
  fails("lstm_peephole", {{"peephole", false}},
        {"cell 'lstm_peephole' fixes peephole = true", "the cell it is an alias of"});
  fails("mgu", {{"slim", 3}}, {"option 'slim' of cell 'mgu': expected a value in [0, 2], got 3"});
  fails("mgu", {{"slim", 1.5}}, {"expected an integer, got 1.5"});
  try {
    check_cell_options("lstm", {{"peepole", true}});
  } catch (const CellOptionError& e) {
    EXPECT_EQ(e.option, "peepole");
  }
  // The layers pass options down and print them.
  expect_message<CellOptionError>(
      [] {
        RNN(RNNOptions("lstm", 2, 3).cell_options({{"peephole", "yes"}}));
      },
      {"expected a boolean"});
  auto rnn = RNN(RNNOptions("lstm", 2, 3).cell_options({{"peephole", true}}));
  std::ostringstream os;
  rnn->pretty_print(os);
  EXPECT_NE(os.str().find("cell=lstm(peephole=true)"), std::string::npos) << os.str();
  EXPECT_TRUE(rnn->named_parameters().contains("l0.cell.p_f"));
}

TEST(CellOptions, NumbersTakeIntegersAndRegistrationChecksItsOwnTable) {
  register_cell("test_scaled_rnn",
                [](const CellSpec& s) {
                  EXPECT_EQ(s.option<double>("scale"), 1.0)
                      << "an integer where a number is expected";
                  return make_cell("rnn", CellSpec(s.input_size(), s.hidden_size()));
                },
                {{"scale", 0.5, "a number", 0, 2}});
  EXPECT_NO_THROW(make_cell("test_scaled_rnn", CellSpec(2, 3).options({{"scale", 1}})));
  expect_message<CellOptionError>(
      [] {
        make_cell("test_scaled_rnn", CellSpec(2, 3).options({{"scale", -1.0}}));
      },
      {"expected a value in [0, 2], got -1"});
  rnnkit_test::expect_error(
      [] {
        register_cell("twice", [](const CellSpec&) { return nullptr; },
                      {{"a", 1, ""}, {"a", 2, ""}});
      },
      {"option 'a' is defined twice"});
  rnnkit_test::expect_error([] { register_cell_alias("x", "lstm_peephole", {}); },
                            {"expected a registered cell that is not an alias"});
  expect_message<CellOptionError>(
      [] {
        register_cell_alias("x", "lstm", {{"peep", true}});
      },
      {"unknown option 'peep'"});
  register_cell_alias("test_mgu_slim", "mgu", {{"slim", 2}});
  EXPECT_EQ(check_cell_options("test_mgu_slim", {}).at("slim"), CellOptionValue(2));
}

// The MGU's slim option against its equations, written out here in float64.
TEST(CellOptions, MguSlimVariantsFollowTheirEquations) {
  const auto x = torch::randn({2, 3}, torch::kDouble), a0 = torch::randn({2, 4}, torch::kDouble);
  for (int64_t slim = 0; slim <= 2; ++slim) {
    auto cell = std::dynamic_pointer_cast<mgu::MGUCellImpl>(seeded("mgu", {{"slim", slim}}));
    ASSERT_TRUE(cell);
    EXPECT_EQ(cell->W_f.size(1), slim == 0 ? 7 : 4);
    EXPECT_EQ(cell->b_f.defined(), slim < 2);
    const auto gate_in = slim == 0 ? torch::cat({a0, x}, 1) : a0;
    auto z = torch::matmul(gate_in, cell->W_f.t());
    if (slim < 2) z = z + cell->b_f;
    const auto gf = torch::sigmoid(z);
    const auto at =
        torch::tanh(torch::matmul(torch::cat({gf * a0, x}, 1), cell->W_a.t()) + cell->b_a);
    const auto want = gf * at + (1 - gf) * a0;
    EXPECT_LT(max_abs_diff(cell->step(x, State{a0, {}}).a, want), 1e-14) << "slim " << slim;
    // Gradients by central differences, for the inputs and the variant's own parameters.
    auto xv = x.clone().requires_grad_(), av = a0.clone().requires_grad_();
    std::vector<torch::Tensor> vars{xv, av};
    for (const auto& p : cell->parameters()) vars.push_back(p);
    rnnkit_test::gradcheck(
        [&] {
          return (cell->step(xv, State{av, {}}).a * 0.7).sum();
        },
        vars, "mgu slim " + std::to_string(slim));
  }
}

TEST(CellOptions, FromConfigFilesAndSetOverrides) {
  const auto dir = rnnkit_test::temp_dir("cell_options");
  const auto path = rnnkit_test::write_file(
      dir, "m.toml", "[model]\ncell = \"lstm\"\n\n[model.cell_options]\npeephole = true\n");
  {
    train::ConfigReader c(path);
    const auto r = train::RecurrentSpec::read(c, "model", {});
    EXPECT_EQ(r.cell_options.at("peephole"), CellOptionValue(true));
    EXPECT_NO_THROW(c.reject_unknown_keys());
  }
  {
    train::ConfigReader c(path, {"model.cell=mgu", "model.cell_options.slim=1"});
    expect_message<train::ConfigError>(
        [&] { train::RecurrentSpec::read(c, "model", {}); },
        {"m.toml:5: key model.cell_options.peephole",
         "unknown option 'peephole' for cell 'mgu'; it takes: slim"});
  }
  {
    train::ConfigReader c(path, {"model.cell=mgu", "model.cell_options={slim = 9}"});
    expect_message<train::ConfigError>([&] { train::RecurrentSpec::read(c, "model", {}); },
                                       {"--set model.cell_options", "expected a value in [0, 2]"});
  }
  {
    train::ConfigReader c(path, {"model.cell_options.peephole=\"yes\""});
    expect_message<train::ConfigError>([&] { train::RecurrentSpec::read(c, "model", {}); },
                                       {"--set model.cell_options.peephole", "expected a boolean"});
  }
  {
    train::ConfigReader c(rnnkit_test::write_file(dir, "n.toml", "[model]\ncell_options = 3\n"));
    expect_message<train::ConfigError>([&] { train::RecurrentSpec::read(c, "model", {}); },
                                       {"n.toml:2: key model.cell_options", "expected a table"});
  }
  {
    // The resolved config (what checkpoints keep) carries the options.
    train::ConfigReader c(path, {"model.cell=rnn", "model.cell_options={activation = \"relu\"}"});
    const auto r = train::RecurrentSpec::read(c, "model", {});
    EXPECT_EQ(r.cell_options.at("activation"), CellOptionValue("relu"));
    const auto again = train::ConfigReader::from_string(c.resolved(), "saved");
    auto copy = again;
    EXPECT_EQ(train::RecurrentSpec::read(copy, "model", {}).cell_options, r.cell_options);
  }
}

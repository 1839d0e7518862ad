// Cells' own options (rnnkit/registry.h): the variants that were names (lstm_peephole, rnn_relu,
// gru_reset_after) are aliases of a cell with an option set, and give the same cell; bad options
// fail naming the option and what was expected; the MGU example's `slim` option changes its
// equations as documented; [model.cell_options] reaches the apps.
#include "test_train_util.h"

#include <rnnkit/plugin.h>
#include <rnnkit/rnn.h>
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
    const auto r = train::read_rnn_options(c, "model", RNNOptions("lstm", 0, 128));
    EXPECT_EQ(r.cell_options().at("peephole"), CellOptionValue(true));
    EXPECT_NO_THROW(c.reject_unknown_keys());
  }
  {
    train::ConfigReader c(path, {"model.cell=mgu", "model.cell_options.slim=1"});
    expect_message<train::ConfigError>(
        [&] { train::read_rnn_options(c, "model", RNNOptions("lstm", 0, 128)); },
        {"m.toml:5: key model.cell_options.peephole",
         "unknown option 'peephole' for cell 'mgu'; it takes: slim"});
  }
  {
    train::ConfigReader c(path, {"model.cell=mgu", "model.cell_options={slim = 9}"});
    expect_message<train::ConfigError>(
        [&] { train::read_rnn_options(c, "model", RNNOptions("lstm", 0, 128)); },
        {"--set model.cell_options", "expected a value in [0, 2]"});
  }
  {
    train::ConfigReader c(path, {"model.cell_options.peephole=\"yes\""});
    expect_message<train::ConfigError>(
        [&] { train::read_rnn_options(c, "model", RNNOptions("lstm", 0, 128)); },
        {"--set model.cell_options.peephole", "expected a boolean"});
  }
  {
    train::ConfigReader c(rnnkit_test::write_file(dir, "n.toml", "[model]\ncell_options = 3\n"));
    expect_message<train::ConfigError>(
        [&] { train::read_rnn_options(c, "model", RNNOptions("lstm", 0, 128)); },
        {"n.toml:2: key model.cell_options", "expected a table"});
  }
  {
    // The resolved config (what checkpoints keep) carries the options.
    train::ConfigReader c(path, {"model.cell=rnn", "model.cell_options={activation = \"relu\"}"});
    const auto r = train::read_rnn_options(c, "model", RNNOptions("lstm", 0, 128));
    EXPECT_EQ(r.cell_options().at("activation"), CellOptionValue("relu"));
    const auto again = train::ConfigReader::from_string(c.resolved(), "saved");
    auto copy = again;
    EXPECT_EQ(train::read_rnn_options(copy, "model", RNNOptions("lstm", 0, 128)).cell_options(),
              r.cell_options());
  }
}

// One recurrent options struct: a cell factory sees the network's options whole, at its own
// layer's input, and an app's config reaches the network without a field copied by hand.
TEST(RecurrentOptions, EveryLayerAndFactoryGetsTheOptionsWhole) {
  static std::vector<RNNOptions> seen;
  seen.clear();
  register_cell("test_spy_lstm", [](const CellSpec& s) {
    seen.push_back(s.rnn());
    return make_cell("lstm", s);
  });
  auto rnn = RNN(RNNOptions("test_spy_lstm", 3, 4)
                     .num_layers(2)
                     .bidirectional(true)
                     .recurrent_dropout(0.25)
                     .init(Init::kOrthogonal)
                     .forget_bias(1.5)
                     .batch_first(true));
  ASSERT_EQ(seen.size(), 4u);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].cell(), "test_spy_lstm");
    EXPECT_EQ(seen[i].input_size(), i < 2 ? 3 : 8) << "layer 2 reads both directions";
    EXPECT_EQ(seen[i].hidden_size(), 4);
    EXPECT_EQ(seen[i].num_layers(), 2);
    EXPECT_EQ(seen[i].recurrent_dropout(), 0.25);
    EXPECT_EQ(seen[i].init(), Init::kOrthogonal);
    ASSERT_TRUE(seen[i].forget_bias().has_value());
    EXPECT_EQ(*seen[i].forget_bias(), 1.5);
    EXPECT_FALSE(seen[i].batch_first()) << "layers inside an RNN are fed time-major";
  }
  EXPECT_TRUE(rnn->layer(1, 1)->options.reverse());
  EXPECT_EQ(rnn->layer(1, 1)->options.rnn().input_size(), 8);
  // The forget bias reached the LSTM built from the spec.
  EXPECT_TRUE(rnn->cell(1, 0).named_parameters()["b_f"].eq(1.5).all().item<bool>());

  // A config's recurrent keys reach the language model's network through LanguageModelOptions.
  const auto dir = rnnkit_test::temp_dir("rnn_options_whole");
  rnnkit_test::write_file(dir, "train.txt", "abc abd\n");
  rnnkit_test::write_file(dir, "valid.txt", "abc\n");
  train::ConfigReader c(
      rnnkit_test::write_file(dir, "lm.toml",
                              "[data]\nlevel = \"char\"\ntrain = \"train.txt\"\n"
                              "valid = \"valid.txt\"\n[model]\nembedding_size = 6\n"),
      {"model.hidden_size=5", "model.num_layers=2", "model.dropout=0.3",
       "model.recurrent_dropout=0.2", "model.variational_dropout=true", "model.forget_bias=2",
       "model.init=xavier", "model.cell=lstm", "model.cell_options.peephole=true"});
  const auto l = lm::LMConfig::read(c);
  lm::LanguageModel m(l.model_options(7));
  const RNNOptions& o = m->rnn->options;
  EXPECT_EQ(o.input_size(), 6);
  EXPECT_EQ(o.hidden_size(), 5);
  EXPECT_EQ(o.num_layers(), 2);
  EXPECT_EQ(o.dropout(), 0.3);
  EXPECT_EQ(o.recurrent_dropout(), 0.2);
  EXPECT_TRUE(o.variational_dropout());
  EXPECT_EQ(*o.forget_bias(), 2.0);
  EXPECT_EQ(o.init(), Init::kXavier);
  EXPECT_EQ(o.cell_options().at("peephole"), CellOptionValue(true));
  EXPECT_TRUE(m->rnn->named_parameters().contains("l1.cell.p_f"));
}

// The library throws one family: c10::Error and its subclasses, whose what() is the message.
TEST(RecurrentOptions, LibraryErrorsAreOneFamily) {
  try {
    check_cell_options("lstm", {{"peephole", 3}});
    FAIL() << "expected a CellOptionError";
  } catch (const c10::ValueError& e) {
    EXPECT_NE(dynamic_cast<const CellOptionError*>(&e), nullptr);
    EXPECT_EQ(std::string(e.what()), e.what_without_backtrace());
    EXPECT_NE(std::string(e.what()).find("expected a boolean"), std::string::npos) << e.what();
  }
  try {
    load_plugin("/nonexistent/libnothing.so");
    FAIL() << "expected a PluginError";
  } catch (const c10::Error& e) {
    EXPECT_NE(dynamic_cast<const PluginError*>(&e), nullptr);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/libnothing.so: cannot load the plugin"),
              std::string::npos)
        << e.what();
    EXPECT_EQ(std::string(e.what()), e.what_without_backtrace());
  }
}

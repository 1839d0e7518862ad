// Every bad argument raises an error that says what was expected and what came in.
#include "test_util.h"

using namespace rnnkit;
using rnnkit_test::expect_error;
using torch::Tensor;

TEST(Errors, WrongInputRank) {
  auto rnn = RNN(RNNOptions("lstm", 3, 4));
  expect_error(
      [&] {
        rnn->forward(torch::randn({5, 3}));
      },
      {"rnnkit::RNN", "expected input of rank 3", "[T, B, D]", "got rank 2"});
  auto bf = RecurrentLayer(RecurrentOptions(RNNOptions("gru", 3, 4).batch_first(true)));
  expect_error(
      [&] {
        bf->forward(torch::randn({2, 5, 3, 1}));
      },
      {"rnnkit::RecurrentLayer", "[B, T, D] with batch_first", "got rank 4"});
  auto cell = LSTMCell(3, 4);
  expect_error([&] { cell->forward(torch::randn({3})); },
               {"expected x_t of shape [B, D]", "rank 1"});
}

TEST(Errors, FeatureSizeMismatch) {
  auto rnn = RNN(RNNOptions("rnn", 3, 4));
  expect_error(
      [&] {
        rnn->forward(torch::randn({5, 2, 7}));
      },
      {"expected input with D = 3", "got 7"});
  auto cell = GRUCell(3, 4);
  expect_error([&] { cell->forward(torch::randn({2, 5})); }, {"D = 3", "got 5"});
  expect_error(
      [&] {
        cell->forward(torch::randn({2, 3}), State{torch::zeros({2, 9}), {}});
      },
      {"expected state a of shape [2, 4]", "[2, 9]"});
  auto lstm = LSTMCell(3, 4);
  expect_error(
      [&] {
        lstm->forward(torch::randn({2, 3}), State{torch::zeros({2, 4}), {}});
      },
      {"expected memory cell c of shape [2, 4]"});
}

TEST(Errors, BadLengths) {
  auto rnn = RNN(RNNOptions("lstm", 3, 4));
  const Tensor x = torch::randn({5, 2, 3});
  expect_error(
      [&] {
        rnn->forward(x, torch::tensor({0, 5}, torch::kLong));
      },
      {"expected every length in [1, T = 5]", "from 0 to 5"});
  expect_error(
      [&] {
        rnn->forward(x, torch::tensor({3, 9}, torch::kLong));
      },
      {"[1, T = 5]", "from 3 to 9"});
  expect_error(
      [&] {
        rnn->forward(x, torch::tensor({3, 5}, torch::kInt));
      },
      {"expected lengths of dtype int64", "Int"});
  expect_error(
      [&] {
        rnn->forward(x, torch::tensor({3, 5, 1}, torch::kLong));
      },
      {"expected lengths of shape [B] = [2]", "[3]"});
  // The meta device stands in for "another device" on machines without a GPU.
  const Tensor meta =
      torch::empty({2}, torch::TensorOptions().dtype(torch::kLong).device(torch::kMeta));
  expect_error([&] { rnn->forward(x, meta); },
               {"expected lengths on the CPU or on the input's device (cpu)", "meta"});
}

TEST(Errors, ZeroHiddenSize) {
  for (const auto& name : rnnkit_test::builtin_cells()) {
    expect_error([&] { make_cell(name, CellSpec(3, 0)); },
                 {"hidden_size must be positive", "got 0"});
  }
  expect_error([&] { RNN(RNNOptions("lstm", 3, 0)); }, {"hidden_size must be positive, got 0"});
  expect_error([&] { LSTMCell(0, 4); }, {"input_size must be positive, got 0"});
}

TEST(Errors, UnknownCellListsTheKnownOnes) {
  expect_error([&] { RNN(RNNOptions("lstn", 3, 4)); }, {"unknown cell 'lstn'", "known cells:",
                                                        "gru, gru_reset_after, gru_simple, lstm, "
                                                        "lstm_peephole"});
}

TEST(Errors, BadOptionsAndStates) {
  expect_error([&] { RNN(RNNOptions("lstm", 3, 4).num_layers(0)); },
               {"expected num_layers >= 1, got 0"});
  expect_error([&] { RNN(RNNOptions("lstm", 3, 4).dropout(1.0)); },
               {"expected dropout in [0, 1), got 1"});
  expect_error([&] { RNN(RNNOptions("lstm", 3, 4).recurrent_dropout(-0.1)); },
               {"expected recurrent_dropout in [0, 1), got -0.1"});
  auto rnn = RNN(RNNOptions("gru", 3, 4).num_layers(2));
  const Tensor x = torch::randn({5, 2, 3});
  expect_error(
      [&] {
        rnn->forward(x, {}, {State{torch::zeros({2, 4}), {}}});
      },
      {"expected 2 initial states", "got 1"});
  expect_error(
      [&] {
        rnn->forward(x, {}, unstack_states(torch::zeros({2, 3, 4})));
      },
      {"expected an initial state a of shape [2, 4]", "[3, 4]"});
  expect_error(
      [&] {
        rnn->forward(x, {}, unstack_states(torch::zeros({2, 2, 4}, torch::kDouble)));
      },
      {"expected the initial state on cpu as Float", "Double"});
  expect_error([&] { rnn->forward(x.to(torch::kLong)); }, {"expected a floating-point input"});
  expect_error([&] { register_cell("", nullptr); }, {"expected a non-empty cell name"});
}

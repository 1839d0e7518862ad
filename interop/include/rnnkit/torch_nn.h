#pragma once
// Weight exchange with torch::nn (target rnnkit::interop)'s LSTM, GRU and RNN, for the cells that
// have a counterpart: lstm, gru_reset_after (gru with reset_after = true, the cuDNN form), rnn
// (tanh) and rnn_relu.
//
// rnnkit keeps one [H, H + D] matrix per gate acting on [a<t-1>, x<t>] and one bias; torch::nn
// stacks the gates' input and recurrent matrices (weight_ih [G*H, D], weight_hh [G*H, H]) and
// has two biases. The GRU's update gate is 1 - z in the course's notation, so its rows change
// sign; its candidate keeps b_hn apart (b_cc, inside Γr ⊙ (...)).
//
//     torch::nn::LSTM theirs(torch::nn::LSTMOptions(128, 256).num_layers(2));
//     rnnkit::RNN ours = rnnkit::from_torch(theirs);   // same outputs and final states
//     torch::nn::LSTM back = rnnkit::to_torch_lstm(*ours);
#include <string>

#include <torch/nn/modules/rnn.h>

#include <rnnkit/rnn.h>

namespace rnnkit {

/// An RNN with the weights, sizes, layers, directions, dropout and batch_first of `m`, on its
/// device and in its dtype. An LSTM with proj_size is refused.
RNN from_torch(const torch::nn::LSTM& m);
RNN from_torch(const torch::nn::GRU& m);
RNN from_torch(const torch::nn::RNN& m);

/// The torch::nn counterpart of `rnn`'s cell ("lstm", "gru_reset_after", "rnn", "rnn_relu"); a
/// c10::ValueError naming the cells that map for any other cell, and for recurrent_dropout or
/// variational dropout between layers, which torch::nn does not have.
std::string torch_counterpart(const RNNImpl& rnn);

/// The torch::nn module with `rnn`'s weights; a c10::ValueError when torch_counterpart says
/// another module (or none).
torch::nn::LSTM to_torch_lstm(RNNImpl& rnn);
torch::nn::GRU to_torch_gru(RNNImpl& rnn);
torch::nn::RNN to_torch_rnn(RNNImpl& rnn);

}  // namespace rnnkit

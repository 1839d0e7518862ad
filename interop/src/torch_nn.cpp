#include "rnnkit/torch_nn.h"

#include <vector>

#include <c10/util/Exception.h>
#include <torch/nn/options/rnn.h>

namespace rnnkit {

namespace {

struct Gate {
  const char* W;
  const char* b;
  int64_t index;  ///< in torch::nn's stacking
  double sign;
};

const std::vector<Gate>& gates(const std::string& counterpart) {
  static const std::vector<Gate> lstm{
      {"W_u", "b_u", 0, 1}, {"W_f", "b_f", 1, 1}, {"W_c", "b_c", 2, 1}, {"W_o", "b_o", 3, 1}};
  static const std::vector<Gate> gru{
      {"W_r", "b_r", 0, 1}, {"W_u", "b_u", 1, -1}, {"W_c", "b_c", 2, 1}};
  static const std::vector<Gate> rnn{{"W_a", "b_a", 0, 1}};
  if (counterpart == "lstm") return lstm;
  if (counterpart == "gru_reset_after") return gru;
  return rnn;
}

std::string suffix(int64_t l, int64_t d) { return std::to_string(l) + (d == 1 ? "_reverse" : ""); }

template <class TorchOptions>
RNN build(const std::string& cell, const TorchOptions& o, const torch::nn::Module& theirs) {
  RNN ours(RNNOptions(cell, o.input_size(), o.hidden_size())
               .num_layers(o.num_layers())
               .bidirectional(o.bidirectional())
               .dropout(o.dropout())
               .batch_first(o.batch_first()));
  const auto p = theirs.named_parameters();
  const auto& w = p["weight_ih_l0"];
  ours->to(w.device(), w.scalar_type());
  torch::NoGradGuard no_grad;
  const int64_t H = o.hidden_size(), K = o.bidirectional() ? 2 : 1;
  for (int64_t l = 0; l < o.num_layers(); ++l) {
    for (int64_t d = 0; d < K; ++d) {
      const auto s = suffix(l, d);
      const auto& W_ih = p["weight_ih_l" + s];
      const auto& W_hh = p["weight_hh_l" + s];
      const auto zeros = torch::zeros({W_ih.size(0)}, W_ih.options());
      const auto b_ih = p.contains("bias_ih_l" + s) ? p["bias_ih_l" + s] : zeros;
      const auto b_hh = p.contains("bias_hh_l" + s) ? p["bias_hh_l" + s] : zeros;
      auto own = ours->cell(l, d).named_parameters();
      for (const auto& g : gates(cell)) {
        auto rows = [&](const torch::Tensor& t) { return t.narrow(0, g.index * H, H); };
        own[g.W].copy_(g.sign * torch::cat({rows(W_hh), rows(W_ih)}, 1));  // [H, H + D]
        if (cell == "gru_reset_after" && std::string(g.W) == "W_c") {
          own["b_c"].copy_(rows(b_ih));
          own["b_cc"].copy_(rows(b_hh));
        } else {
          own[g.b].copy_(g.sign * (rows(b_ih) + rows(b_hh)));
        }
      }
    }
  }
  return ours;
}

template <class TorchModule, class TorchOptions>
TorchModule export_to(RNNImpl& rnn, const std::string& want, TorchOptions o) {
  const std::string have = torch_counterpart(rnn);
  TORCH_CHECK_VALUE(have == want, "rnnkit::to_torch: cell '", rnn.options.cell(), "' maps onto ",
                    have == "lstm"              ? "torch::nn::LSTM"
                    : have == "gru_reset_after" ? "torch::nn::GRU"
                                                : "torch::nn::RNN",
                    ", not the module asked for");
  const auto& r = rnn.options;
  o.num_layers(r.num_layers())
      .bidirectional(r.bidirectional())
      .dropout(r.dropout())
      .batch_first(r.batch_first());
  TorchModule theirs(o);
  const auto own0 = rnn.cell(0, 0).named_parameters();
  const auto& w = own0[gates(have).front().W];
  theirs->to(w.device(), w.scalar_type());
  auto p = theirs->named_parameters();
  torch::NoGradGuard no_grad;
  const int64_t H = r.hidden_size(), K = rnn.num_directions();
  for (int64_t l = 0; l < r.num_layers(); ++l) {
    for (int64_t d = 0; d < K; ++d) {
      const auto s = suffix(l, d);
      const auto own = rnn.cell(l, d).named_parameters();
      for (const auto& g : gates(have)) {
        auto rows = [&](const std::string& name) { return p[name + s].narrow(0, g.index * H, H); };
        const auto W = g.sign * own[g.W];  // [H, H + D_l]: a<t-1> first
        rows("weight_hh_l").copy_(W.narrow(1, 0, H));
        rows("weight_ih_l").copy_(W.narrow(1, H, W.size(1) - H));
        if (have == "gru_reset_after" && std::string(g.W) == "W_c") {
          rows("bias_ih_l").copy_(own["b_c"]);
          rows("bias_hh_l").copy_(own["b_cc"]);
        } else {
          rows("bias_ih_l").copy_(g.sign * own[g.b]);
          rows("bias_hh_l").zero_();
        }
      }
    }
  }
  return theirs;
}

const char* kMapped = "lstm, gru_reset_after (gru with reset_after = true), rnn and rnn_relu";

}  // namespace

RNN from_torch(const torch::nn::LSTM& m) {
  TORCH_CHECK_VALUE(m->options.proj_size() == 0,
                    "rnnkit::from_torch: an LSTM with proj_size has no rnnkit counterpart");
  return build("lstm", m->options, *m);
}

RNN from_torch(const torch::nn::GRU& m) { return build("gru_reset_after", m->options, *m); }

RNN from_torch(const torch::nn::RNN& m) {
  // By name: the variant is c10's own in LibTorch 1.13 and std::variant in 2.x.
  const bool tanh = torch::enumtype::get_enum_name(m->options.nonlinearity()) == "kTanh";
  return build(tanh ? "rnn" : "rnn_relu", m->options, *m);
}

std::string torch_counterpart(const RNNImpl& rnn) {
  const auto& o = rnn.options;
  const CellOptions opts = check_cell_options(o.cell(), o.cell_options());
  auto is = [&](const char* key, const CellOptionValue& v) {
    const auto it = opts.find(key);
    return it != opts.end() && it->second == v;
  };
  std::string name;
  if ((o.cell() == "lstm" || o.cell() == "lstm_peephole") && is("peephole", false)) {
    name = "lstm";
  } else if ((o.cell() == "gru" || o.cell() == "gru_reset_after") && is("reset_after", true)) {
    name = "gru_reset_after";
  } else if ((o.cell() == "rnn" || o.cell() == "rnn_relu") && is("activation", "tanh")) {
    name = "rnn";
  } else if ((o.cell() == "rnn" || o.cell() == "rnn_relu") && is("activation", "relu")) {
    name = "rnn_relu";
  }
  TORCH_CHECK_VALUE(!name.empty(), "rnnkit::to_torch: cell '",
                    cell_label(o.cell(), o.cell_options()),
                    "' has no torch::nn counterpart; the cells that map are ", kMapped);
  TORCH_CHECK_VALUE(o.recurrent_dropout() == 0,
                    "rnnkit::to_torch: recurrent_dropout = ", o.recurrent_dropout(),
                    " has no torch::nn counterpart; set it to 0 first");
  TORCH_CHECK_VALUE(!(o.variational_dropout() && o.dropout() > 0),
                    "rnnkit::to_torch: variational dropout between layers has no torch::nn "
                    "counterpart");
  return name;
}

torch::nn::LSTM to_torch_lstm(RNNImpl& rnn) {
  return export_to<torch::nn::LSTM>(
      rnn, "lstm", torch::nn::LSTMOptions(rnn.options.input_size(), rnn.options.hidden_size()));
}

torch::nn::GRU to_torch_gru(RNNImpl& rnn) {
  return export_to<torch::nn::GRU>(
      rnn, "gru_reset_after",
      torch::nn::GRUOptions(rnn.options.input_size(), rnn.options.hidden_size()));
}

torch::nn::RNN to_torch_rnn(RNNImpl& rnn) {
  const bool relu = torch_counterpart(rnn) == "rnn_relu";
  auto o = torch::nn::RNNOptions(rnn.options.input_size(), rnn.options.hidden_size());
  if (relu) o.nonlinearity(torch::kReLU);
  return export_to<torch::nn::RNN>(rnn, relu ? "rnn_relu" : "rnn", o);
}

}  // namespace rnnkit

#include "gradflow.h"

#include <cmath>

#include <fmt/core.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <rnnkit/registry.h>
#include <rnnkit/rnn.h>

namespace rnnkit::gradflow {

using torch::Tensor;
namespace F = torch::nn::functional;

std::string CellSetup::label() const {
  // No commas: labels are CSV column names.
  std::string s = rnn.cell();
  if (rnn.init() != Init::kUniform) s += " (" + to_string(rnn.init()) + ")";
  if (rnn.forget_bias()) s += fmt::format(" (forget bias {:g})", *rnn.forget_bias());
  return s;
}

GradNorms gradient_norms(const CellSetup& setup, int64_t T, int64_t B, int64_t D, int64_t H,
                         uint64_t seed) {
  torch::manual_seed(seed);
  auto cell =
      make_cell(setup.rnn.cell(), CellSpec(RNNOptions(setup.rnn).input_size(D).hidden_size(H)));
  cell->to(torch::kDouble);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  // The same x and r for every cell: drawn after the cell, from a reseeded generator.
  torch::manual_seed(seed + 1);
  const Tensor x = torch::randn({T, B, D}, opts).requires_grad_(true);
  const Tensor r = torch::randn({H}, opts);
  State s;
  std::vector<Tensor> a;
  for (int64_t t = 0; t < T; ++t) {
    s = cell->step(x[t], s);
    s.a.retain_grad();  // ∂L/∂a<t>: everything that flows back into a<t>, through all later steps
    a.push_back(s.a);
  }
  (s.a.mv(r).sum() / B).backward();
  GradNorms g;
  for (int64_t t = 0; t < T; ++t) {
    g.da.push_back(a[t].grad().defined() ? a[t].grad().norm().item<double>() : 0.0);
    g.dx.push_back(x.grad()[t].norm().item<double>());
  }
  return g;
}

namespace {

// Tokens: 5 singular nouns, 5 plural nouns, 20 fillers, 1 query.
constexpr int64_t kNouns = 5, kFillers = 20, kVocab = 2 * kNouns + kFillers + 1,
                  kQuery = kVocab - 1;

/// x [gap + 2, B] token ids, y [B]: 0 singular ("was"), 1 plural ("were").
std::pair<Tensor, Tensor> agreement_batch(int64_t gap, int64_t B) {
  const Tensor y = torch::randint(2, {B}, torch::kLong);
  const Tensor noun = torch::randint(kNouns, {B}, torch::kLong) + y * kNouns;
  const Tensor fillers = torch::randint(kFillers, {gap, B}, torch::kLong) + 2 * kNouns;
  const Tensor query = torch::full({1, B}, kQuery, torch::kLong);
  return {torch::cat({noun.unsqueeze(0), fillers, query}), y};
}

struct AgreementModel {
  torch::nn::Embedding embedding;
  RNN rnn;
  torch::nn::Linear head;
  Tensor logits(const Tensor& x) {
    return head->forward(rnn->forward(embedding->forward(x)).states.back().a);
  }
  std::vector<Tensor> parameters() {
    auto p = embedding->parameters();
    for (const auto& q : rnn->parameters()) p.push_back(q);
    for (const auto& q : head->parameters()) p.push_back(q);
    return p;
  }
};

AgreementModel agreement_model(const CellSetup& s, int64_t E, int64_t H) {
  return {torch::nn::Embedding(kVocab, E), RNN(RNNOptions(s.rnn).input_size(E).hidden_size(H)),
          torch::nn::Linear(H, 2)};
}

}  // namespace

double agreement_accuracy(const CellSetup& setup, int64_t gap, const AgreementOptions& o) {
  torch::manual_seed(o.seed);
  auto m = agreement_model(setup, o.embedding_size, o.hidden_size);
  auto params = m.parameters();
  torch::optim::Adam opt(params, torch::optim::AdamOptions(o.learning_rate));
  for (int64_t step = 0; step < o.steps; ++step) {
    auto [x, y] = agreement_batch(gap, o.batch_size);
    const Tensor loss = F::cross_entropy(m.logits(x), y);
    opt.zero_grad();
    loss.backward();
    if (o.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.clip_norm);
    opt.step();
  }
  torch::NoGradGuard no_grad;
  m.rnn->eval();
  auto [x, y] = agreement_batch(gap, 1000);
  return m.logits(x).argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
}

ExplodeTrace explode(const ExplodeOptions& o) {
  torch::manual_seed(o.seed);
  const CellSetup setup{RNNOptions("rnn_relu", 0, 0).init(Init::kOrthogonal)};
  auto m = agreement_model(setup, 16, o.hidden_size);
  {
    torch::NoGradGuard g;
    auto& cell = m.rnn->cell(0, 0);
    for (auto& kv : cell.named_parameters()) {
      if (kv.key().rfind("W_", 0) == 0) kv.value().narrow(1, 0, o.hidden_size).mul_(o.scale);
    }
  }
  auto params = m.parameters();
  torch::optim::SGD opt(params, torch::optim::SGDOptions(o.learning_rate));
  ExplodeTrace trace;
  auto global_norm = [&] {
    double sq = 0;
    for (const auto& p : params) {
      if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
    }
    return std::sqrt(sq);
  };
  for (int64_t step = 0; step < o.steps; ++step) {
    auto [x, y] = agreement_batch(o.T, o.batch_size);
    const Tensor loss = F::cross_entropy(m.logits(x), y);
    opt.zero_grad();
    loss.backward();
    const double before = global_norm();
    if (o.clip_value > 0) torch::nn::utils::clip_grad_value_(params, o.clip_value);
    if (o.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.clip_norm);
    const double after = global_norm();
    trace.loss.push_back(loss.item<double>());
    trace.norm_before.push_back(before);
    trace.norm_after.push_back(after);
    if (!std::isfinite(trace.loss.back()) || !std::isfinite(before)) {
      trace.diverged_at = step;
      break;
    }
    opt.step();
  }
  return trace;
}

}  // namespace rnnkit::gradflow

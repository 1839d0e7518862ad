#include "rnnkit/crf.h"

#include <limits>

#include <c10/util/Exception.h>
#include <torch/nn/init.h>

namespace rnnkit {

using torch::Tensor;

CRFImpl::CRFImpl(CRFOptions options_) : options(options_) { reset(); }

void CRFImpl::reset() {
  const int64_t K = options.num_tags();
  TORCH_CHECK(K >= 1, "CRF: expected num_tags >= 1, got ", K);
  transitions = register_parameter("transitions", torch::empty({K, K}));
  start_transitions = register_parameter("start_transitions", torch::empty({K}));
  end_transitions = register_parameter("end_transitions", torch::empty({K}));
  allowed = register_buffer("allowed", torch::ones({K, K}, torch::kBool));
  allowed_start = register_buffer("allowed_start", torch::ones({K}, torch::kBool));
  allowed_end = register_buffer("allowed_end", torch::ones({K}, torch::kBool));
  reset_parameters();
}

void CRFImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto* p : {&transitions, &start_transitions, &end_transitions}) p->uniform_(-0.1, 0.1);
}

void CRFImpl::pretty_print(std::ostream& os) const {
  os << "rnnkit::CRF(num_tags=" << options.num_tags()
     << ", forbidden_transitions=" << allowed.logical_not().sum().item<int64_t>() << ")";
}

void CRFImpl::set_constraints(const Tensor& a, const Tensor& s, const Tensor& e) {
  const int64_t K = options.num_tags();
  TORCH_CHECK(a.sizes() == torch::IntArrayRef({K, K}) && s.sizes() == torch::IntArrayRef({K}) &&
                  e.sizes() == torch::IntArrayRef({K}),
              "CRF::set_constraints: expected allowed [", K, ", ", K, "], allowed_start [", K,
              "] and allowed_end [", K, "], got ", a.sizes(), ", ", s.sizes(), " and ", e.sizes());
  TORCH_CHECK(
      s.any().item<bool>() && e.any().item<bool>(),
      "CRF::set_constraints: at least one tag must be allowed to start and to end a sequence");
  torch::NoGradGuard no_grad;
  allowed.copy_(a.to(torch::kBool));
  allowed_start.copy_(s.to(torch::kBool));
  allowed_end.copy_(e.to(torch::kBool));
}

Tensor CRFImpl::masked_transitions() const {
  return transitions.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
}
Tensor CRFImpl::masked_start() const {
  return start_transitions.masked_fill(allowed_start.logical_not(),
                                       -std::numeric_limits<double>::infinity());
}
Tensor CRFImpl::masked_end() const {
  return end_transitions.masked_fill(allowed_end.logical_not(),
                                     -std::numeric_limits<double>::infinity());
}

void CRFImpl::check(const Tensor& emissions, const Tensor& lengths, const char* what) const {
  TORCH_CHECK(emissions.dim() == 3 && emissions.size(2) == options.num_tags(), "CRF::", what,
              ": expected emissions [B, T, ", options.num_tags(), "], got ", emissions.sizes());
  TORCH_CHECK(emissions.size(1) >= 1, "CRF::", what, ": expected at least one step, got ",
              emissions.sizes());
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == emissions.size(0) &&
                  lengths.scalar_type() == torch::kLong,
              "CRF::", what, ": expected lengths [", emissions.size(0), "] of int64, got ",
              lengths.sizes(), " ", lengths.scalar_type());
  const auto len = lengths.cpu();
  TORCH_CHECK(len.min().item<int64_t>() >= 1 && len.max().item<int64_t>() <= emissions.size(1),
              "CRF::", what, ": expected lengths in [1, ", emissions.size(1), "], got ",
              len.min().item<int64_t>(), "..", len.max().item<int64_t>());
}

Tensor CRFImpl::log_partition(const Tensor& emissions, const Tensor& lengths) const {
  check(emissions, lengths, "log_partition");
  const auto A = masked_transitions().unsqueeze(0);  // [1, K, K]
  const auto E = emissions.unbind(1);                // T x [B, K]
  const auto len = lengths.to(emissions.device()).unsqueeze(1);
  Tensor alpha = masked_start() + E[0];
  for (size_t t = 1; t < E.size(); ++t) {
    const Tensor next = torch::logsumexp(alpha.unsqueeze(2) + A, 1) + E[t];
    alpha = torch::where(len > static_cast<int64_t>(t), next, alpha);  // frozen past T_b
  }
  return torch::logsumexp(alpha + masked_end(), 1);
}

Tensor CRFImpl::marginals(const Tensor& emissions, const Tensor& lengths) const {
  check(emissions, lengths, "marginals");
  const auto A = masked_transitions().unsqueeze(0);  // [1, K, K]
  const auto E = emissions.unbind(1);                // T x [B, K]
  const int64_t T = emissions.size(1);
  const auto len = lengths.to(emissions.device()).unsqueeze(1);  // [B, 1]
  std::vector<Tensor> alpha{masked_start() + E[0]};              // α<t>: [B, K]
  for (int64_t t = 1; t < T; ++t) {
    const Tensor next = torch::logsumexp(alpha.back().unsqueeze(2) + A, 1) + E[t];
    alpha.push_back(torch::where(len > t, next, alpha.back()));  // frozen past T_b
  }
  const auto log_z = torch::logsumexp(alpha.back() + masked_end(), 1).unsqueeze(1);  // [B, 1]
  std::vector<Tensor> beta(static_cast<size_t>(T));
  beta[static_cast<size_t>(T - 1)] = masked_end().expand_as(E[0]);
  for (int64_t t = T - 2; t >= 0; --t) {
    const auto u = static_cast<size_t>(t);
    const Tensor next = torch::logsumexp(A + (E[u + 1] + beta[u + 1]).unsqueeze(1), 2);
    beta[u] = torch::where(len > t + 1, next, masked_end().expand_as(next));  // t = T_b - 1: end
  }
  std::vector<Tensor> p;
  for (int64_t t = 0; t < T; ++t) {
    const auto u = static_cast<size_t>(t);
    const auto m = torch::exp(alpha[u] + beta[u] - log_z);
    p.push_back(torch::where(len > t, m, torch::zeros_like(m)));
  }
  return torch::stack(p, 1);
}

Tensor CRFImpl::score(const Tensor& emissions, const Tensor& tags, const Tensor& lengths) const {
  check(emissions, lengths, "score");
  TORCH_CHECK(tags.dim() == 2 && tags.size(0) == emissions.size(0) &&
                  tags.size(1) == emissions.size(1) && tags.scalar_type() == torch::kLong,
              "CRF::score: expected tags [", emissions.size(0), ", ", emissions.size(1),
              "] of int64, got ", tags.sizes(), " ", tags.scalar_type());
  const int64_t B = emissions.size(0), T = emissions.size(1), K = options.num_tags();
  const auto y = tags.to(emissions.device());
  const auto len = lengths.to(emissions.device());
  const auto steps = torch::arange(T, len.options());
  const auto real = steps.unsqueeze(0) < len.unsqueeze(1);  // [B, T]
  const auto zero = torch::zeros({}, emissions.options());
  Tensor s = masked_start().index_select(0, y.select(1, 0));
  s = s + torch::where(real, emissions.gather(2, y.unsqueeze(2)).squeeze(2), zero).sum(1);
  if (T > 1) {
    const auto pairs = y.narrow(1, 0, T - 1) * K + y.narrow(1, 1, T - 1);  // [B, T-1]
    const auto a =
        masked_transitions().reshape({-1}).index_select(0, pairs.reshape({-1})).view({B, T - 1});
    s = s + torch::where(real.narrow(1, 1, T - 1), a, zero).sum(1);
  }
  const auto last = y.gather(1, (len - 1).unsqueeze(1)).squeeze(1);
  return s + masked_end().index_select(0, last);
}

Tensor CRFImpl::nll(const Tensor& emissions, const Tensor& tags, const Tensor& lengths) const {
  return log_partition(emissions, lengths) - score(emissions, tags, lengths);
}

std::vector<std::vector<int64_t>> CRFImpl::decode(const Tensor& emissions,
                                                  const Tensor& lengths) const {
  check(emissions, lengths, "decode");
  torch::NoGradGuard no_grad;
  const auto A = masked_transitions().unsqueeze(0);
  const auto E = emissions.unbind(1);
  const auto len = lengths.to(emissions.device()).unsqueeze(1);
  Tensor delta = masked_start() + E[0];
  std::vector<Tensor> back;  // psi<t> for t = 2..T: [B, K]
  for (size_t t = 1; t < E.size(); ++t) {
    const auto best = (delta.unsqueeze(2) + A).max(1);
    delta = torch::where(len > static_cast<int64_t>(t), std::get<0>(best) + E[t], delta);
    back.push_back(std::get<1>(best));
  }
  const auto last = (delta + masked_end()).argmax(1).cpu().contiguous();
  const auto psi = back.empty() ? torch::zeros({1, 1, 1}, torch::kLong)
                                : torch::stack(back).cpu().contiguous();  // [T-1, B, K]
  const auto L = lengths.cpu().contiguous();
  const auto psi_a = psi.accessor<int64_t, 3>();
  const auto last_a = last.accessor<int64_t, 1>();
  const auto len_a = L.accessor<int64_t, 1>();
  std::vector<std::vector<int64_t>> paths(static_cast<size_t>(emissions.size(0)));
  for (int64_t b = 0; b < emissions.size(0); ++b) {
    const int64_t n = len_a[b];
    auto& path = paths[static_cast<size_t>(b)];
    path.assign(static_cast<size_t>(n), 0);
    path[n - 1] = last_a[b];
    for (int64_t t = n - 1; t >= 1; --t) path[t - 1] = psi_a[t - 1][b][path[t]];
  }
  return paths;
}

}  // namespace rnnkit

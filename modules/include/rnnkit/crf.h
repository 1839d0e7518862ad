#pragma once
// A linear-chain conditional random field: a softmax over whole tag sequences, on top of
// per-token scores from any tagger.
//
//     score(y)  = s_start[y<1>] + Σ_t E<t>[y<t>] + Σ_{t=2..T_b} A[y<t-1>, y<t>] + s_end[y<T_b>]
//     α<1>[j]   = s_start[j] + E<1>[j]                                   forward algorithm
//     α<t>[j]   = logsumexp_i(α<t-1>[i] + A[i, j]) + E<t>[j]
//     log Z     = logsumexp_j(α<T_b>[j] + s_end[j])
//     loss      = log Z - score(y_gold)                                  negative log-likelihood
//     β<T_b>[i] = s_end[i]                                               backward algorithm
//     β<t>[i]   = logsumexp_j(A[i, j] + E<t+1>[j] + β<t+1>[j])
//     P(y<t> = j | x) = exp(α<t>[j] + β<t>[j] - log Z)                  marginals
//     δ<t>[j]   = max_i(δ<t-1>[i] + A[i, j]) + E<t>[j],  ψ<t>[j] = argmax_i(...)    Viterbi
//     ŷ<T_b>    = argmax_j(δ<T_b>[j] + s_end[j]),  ŷ<t-1> = ψ<t>[ŷ<t>]
//
// A transition the tag scheme forbids (O -> I-X in IOB2, B-X -> O in IOBES, ...) scores -inf
// in A, s_start or s_end: no path through it has any probability, and Viterbi never takes it.
// Gold paths must be allowed ones (a forbidden gold path has an infinite loss).
//
// Shapes: B batch, T steps (T_b: the length of sequence b), K tags. E [B, T, K] emissions
// (batch-first), A [K, K] indexed (from, to), s_start and s_end [K].
#include <cstdint>
#include <ostream>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace rnnkit {

struct CRFOptions {
  /* implicit */ CRFOptions(int64_t num_tags) : num_tags_(num_tags) {}
  TORCH_ARG(int64_t, num_tags);
};

class CRFImpl : public torch::nn::Cloneable<CRFImpl> {
 public:
  explicit CRFImpl(CRFOptions options);
  void reset() override;
  /// A, s_start and s_end ~ U(-0.1, 0.1); every transition allowed until set_constraints.
  void reset_parameters();
  void pretty_print(std::ostream& os) const override;

  /// Which transitions are allowed: allowed [K, K] (from, to), allowed_start and allowed_end
  /// [K], all bool.
  void set_constraints(const torch::Tensor& allowed, const torch::Tensor& allowed_start,
                       const torch::Tensor& allowed_end);

  /// log Z for each sequence: [B].
  torch::Tensor log_partition(const torch::Tensor& emissions, const torch::Tensor& lengths) const;
  /// P(y<t> = j | x) for every step and tag (forward-backward): [B, T, K], each real step's row
  /// summing to 1, zeros past each length.
  torch::Tensor marginals(const torch::Tensor& emissions, const torch::Tensor& lengths) const;
  /// score(y) of the tag paths tags [B, T] (int64; entries past each length are ignored): [B].
  torch::Tensor score(const torch::Tensor& emissions, const torch::Tensor& tags,
                      const torch::Tensor& lengths) const;
  /// log Z - score(tags): [B].
  torch::Tensor nll(const torch::Tensor& emissions, const torch::Tensor& tags,
                    const torch::Tensor& lengths) const;
  /// The best allowed path of each sequence (Viterbi), T_b tags each.
  std::vector<std::vector<int64_t>> decode(const torch::Tensor& emissions,
                                           const torch::Tensor& lengths) const;

  /// A, s_start and s_end with -inf where forbidden.
  torch::Tensor masked_transitions() const;
  torch::Tensor masked_start() const;
  torch::Tensor masked_end() const;

  CRFOptions options;
  torch::Tensor transitions, start_transitions, end_transitions;  // parameters
  torch::Tensor allowed, allowed_start, allowed_end;              // buffers (bool)

 private:
  void check(const torch::Tensor& emissions, const torch::Tensor& lengths, const char* what) const;
};
TORCH_MODULE(CRF);

}  // namespace rnnkit

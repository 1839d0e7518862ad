#pragma once
// Decoding: greedy and beam search, batched over sentences, over any model that gives the
// next token's log-probabilities one step at a time (a trained translator, or a toy in the
// tests whose every output can be enumerated).
//
// Beam search keeps the K best partial hypotheses per sentence by their summed log-probability.
// Each step takes the 2K best extensions; one ending in <eos> among the top K is finished and
// scored score / length^α (length counts the <eos>; α = 0: no normalisation; marian's and
// OpenNMT's convention), the others fill the K beams. A sentence is done once it has n_best
// finished hypotheses and no live beam can still beat the n-th (its score only falls, its length
// is at most the maximum), or, for a 1-best search, once its best extension is <eos> (so beam 1
// is exactly greedy); at its maximum length every live beam is finished with <eos>.
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace rnnkit::seq2seq {

/// What decoding needs from a model: it holds one state per row (a row is a sentence, or one of a
/// sentence's beams) and advances all rows one token at a time.
class StepModel {
 public:
  virtual ~StepModel() = default;
  /// Log-probabilities [N, V] (float or double) of the next token after `last` [N] int64 (the
  /// first call gets <bos>), one row per live row, advancing each row's state.
  virtual torch::Tensor step(const torch::Tensor& last) = 0;
  /// Keeps the rows `index` [N'] (indices into the current rows, repeats allowed), in order.
  virtual void reorder(const torch::Tensor& index) = 0;
  /// The attention weights [N, S] of the last step (undefined if the model has none).
  virtual torch::Tensor last_attention() const { return {}; }
};

struct SearchOptions {
  int64_t beam = 5;
  double alpha = 1.0;  ///< length normalisation: score / length^α
  int64_t n_best = 1;  ///< hypotheses returned per sentence (≤ beam)
  /// Tokens never produced (<pad>, <bos>, and <unk> unless allowed).
  std::vector<int64_t> banned;
  int64_t bos = 2, eos = 3;
  /// Per sentence, the most tokens before <eos> (the caller's max_length_factor × the source).
  std::vector<int64_t> max_lengths;
  bool keep_attention = false;  ///< record each hypothesis's attention [length, S]
};

struct Hypothesis {
  std::vector<int64_t> tokens;  ///< without <eos>
  double logprob = 0;           ///< Σ log p, <eos> included
  double score = 0;             ///< logprob / (tokens + 1)^α
  torch::Tensor attention;      ///< [tokens + 1, S] when kept
};

/// n_best hypotheses per sentence, best first. `model` starts with one row per sentence.
std::vector<std::vector<Hypothesis>> beam_search(StepModel& model, const SearchOptions& options);
/// The most likely token at each step; the same result as beam_search with beam 1.
std::vector<Hypothesis> greedy_search(StepModel& model, const SearchOptions& options);

/// Checks the options a user gives (beam in 1..kMaxBeam, n_best in 1..beam, α finite and ≥ 0):
/// std::invalid_argument naming the flag otherwise.
void check_search_options(int64_t beam, int64_t n_best, double alpha);
inline constexpr int64_t kMaxBeam = 1000;

}  // namespace rnnkit::seq2seq

#pragma once
// Batching: padding with lengths, length bucketing, seeded shuffling, sharding by rank, and the
// language-model batcher for truncated BPTT.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace rnnkit::data {

struct Padded {
  torch::Tensor tokens;   ///< [B, T] int64 (batch-first), padded with pad_id
  torch::Tensor lengths;  ///< [B] int64
};

/// Pads the sequences `seqs[i]` for i in `indices`. Every sequence must be non-empty.
Padded pad_sequences(const std::vector<std::vector<int64_t>>& seqs,
                     const std::vector<size_t>& indices, int64_t pad_id = 0);

struct BatchPlanOptions {
  size_t batch_size = 32;
  bool shuffle = true;
  /// Sort by length within pools of `bucket_pool` batches so that a batch holds sequences of
  /// similar length (less padding); 0 turns bucketing off.
  size_t bucket_pool = 50;
  uint64_t seed = 0;
  /// Data-parallel sharding: every global batch is split, this process keeping its elements
  /// rank, rank + world, ... (as DistributedSampler strides); a short last batch may leave a
  /// rank with an empty share.
  size_t rank = 0, world = 1;
};

/// Batches of example indices. The same options and epoch give the same plan; each epoch
/// reshuffles (seed + epoch). With world > 1, this rank's share of each batch (maybe empty).
std::vector<std::vector<size_t>> plan_batches(const std::vector<size_t>& lengths,
                                              const BatchPlanOptions& options, uint64_t epoch);

/// A seeded permutation of 0..n-1 (the same seed, the same permutation).
std::vector<size_t> shuffled(size_t n, uint64_t seed);

/// A seeded `fraction` of `examples` (at least one) held out: {the rest, the held-out part}.
template <class T>
std::pair<std::vector<T>, std::vector<T>> hold_out(const std::vector<T>& examples, double fraction,
                                                   uint64_t seed) {
  const auto idx = shuffled(examples.size(), seed);
  const size_t n =
      std::max<size_t>(1, static_cast<size_t>(fraction * static_cast<double>(examples.size())));
  std::pair<std::vector<T>, std::vector<T>> split;
  for (size_t i = 0; i < idx.size(); ++i)
    (i < n ? split.second : split.first).push_back(examples[idx[i]]);
  return split;
}

/// Fold `k` (0-based) of `folds`-fold cross-validation: {its training part, its test part}.
/// The examples are shuffled by `seed` and dealt to the folds in turn, so each is in exactly one
/// test part and the parts' sizes differ by at most one.
template <class T>
std::pair<std::vector<T>, std::vector<T>> fold_split(const std::vector<T>& examples, int64_t folds,
                                                     int64_t k, uint64_t seed) {
  const auto idx = shuffled(examples.size(), seed);
  std::pair<std::vector<T>, std::vector<T>> split;
  for (size_t i = 0; i < idx.size(); ++i) {
    (static_cast<int64_t>(i % static_cast<size_t>(folds)) == k ? split.second : split.first)
        .push_back(examples[idx[i]]);
  }
  return split;
}

/// Batches of 0..n-1 in order, `batch_size` at a time (the last may be shorter): for evaluation.
std::vector<std::vector<size_t>> in_order_batches(size_t n, size_t batch_size);

/// Word dropout for training: each id above `unk_id` becomes `unk_id` with probability p (ids up
/// to `unk_id`, padding included, stay), so that the model learns what to do with unseen words.
torch::Tensor drop_words(const torch::Tensor& tokens, double p, int64_t unk_id);

/// One long token stream cut into B parallel streams ([N, B], the tail that does not fill a row
/// dropped), read in windows of bptt steps; the hidden state is carried from one window to the
/// next of the same stream (truncated BPTT).
class StreamBatcher {
 public:
  StreamBatcher(const std::vector<int64_t>& ids, int64_t batch_size);
  /// The number of windows of length bptt.
  int64_t num_windows(int64_t bptt) const;
  /// Window k: input [T, B] = data[k*bptt .. k*bptt+T), target = the next tokens; T = bptt
  /// except maybe in the last window.
  std::pair<torch::Tensor, torch::Tensor> window(int64_t k, int64_t bptt) const;
  int64_t steps_per_stream() const { return data_.size(0); }
  int64_t batch_size() const { return data_.size(1); }

 private:
  torch::Tensor data_;  // [N, B]
};

}  // namespace rnnkit::data

#include "rnnkit/data/batching.h"

#include <algorithm>
#include <numeric>
#include <random>

#include <c10/util/Exception.h>

namespace rnnkit::data {

Padded pad_sequences(const std::vector<std::vector<int64_t>>& seqs,
                     const std::vector<size_t>& indices, int64_t pad_id) {
  TORCH_CHECK(!indices.empty(), "pad_sequences: expected at least one sequence, got none");
  size_t T = 0;
  for (auto i : indices) {
    TORCH_CHECK(i < seqs.size(), "pad_sequences: index ", i, " outside ", seqs.size(),
                " sequences");
    TORCH_CHECK(!seqs[i].empty(), "pad_sequences: sequence ", i, " is empty");
    T = std::max(T, seqs[i].size());
  }
  const auto B = static_cast<int64_t>(indices.size());
  Padded p;
  p.tokens = torch::full({B, static_cast<int64_t>(T)}, pad_id, torch::kLong);
  p.lengths = torch::empty({B}, torch::kLong);
  auto tok = p.tokens.accessor<int64_t, 2>();
  auto len = p.lengths.accessor<int64_t, 1>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[indices[b]];
    for (size_t t = 0; t < s.size(); ++t) tok[b][t] = s[t];
    len[b] = static_cast<int64_t>(s.size());
  }
  return p;
}

std::vector<std::vector<size_t>> plan_batches(const std::vector<size_t>& lengths,
                                              const BatchPlanOptions& o, uint64_t epoch) {
  TORCH_CHECK(o.batch_size > 0, "plan_batches: expected batch_size > 0");
  TORCH_CHECK(o.world > 0 && o.rank < o.world, "plan_batches: expected rank < world, got rank ",
              o.rank, " of ", o.world);
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed * 1000003ULL + epoch);
  if (o.shuffle) std::shuffle(order.begin(), order.end(), rng);
  if (o.bucket_pool > 0) {
    const size_t pool = o.bucket_pool * o.batch_size;
    for (size_t a = 0; a < order.size(); a += pool) {
      const auto end = order.begin() + std::min(order.size(), a + pool);
      std::stable_sort(order.begin() + a, end,
                       [&](size_t x, size_t y) { return lengths[x] < lengths[y]; });
    }
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t a = 0; a < order.size(); a += o.batch_size) {
    batches.emplace_back(order.begin() + a,
                         order.begin() + std::min(order.size(), a + o.batch_size));
  }
  if (o.shuffle && o.bucket_pool > 0) std::shuffle(batches.begin(), batches.end(), rng);
  if (o.world == 1) return batches;
  // Every rank gets the same number of batches (its share of each global one, elements rank,
  // rank + world, ...), so that no rank waits in a collective for one that has run out.
  for (auto& b : batches) {
    std::vector<size_t> mine;
    for (size_t i = o.rank; i < b.size(); i += o.world) mine.push_back(b[i]);
    b = std::move(mine);
  }
  return batches;
}

std::vector<size_t> shuffled(size_t n, uint64_t seed) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  return idx;
}

std::vector<std::vector<size_t>> in_order_batches(size_t n, size_t batch_size) {
  TORCH_CHECK(batch_size > 0, "in_order_batches: expected a positive batch size, got 0");
  std::vector<std::vector<size_t>> batches;
  for (size_t a = 0; a < n; a += batch_size) {
    batches.emplace_back(std::min(batch_size, n - a));
    std::iota(batches.back().begin(), batches.back().end(), a);
  }
  return batches;
}

torch::Tensor drop_words(const torch::Tensor& tokens, double p, int64_t unk_id) {
  TORCH_CHECK(p >= 0 && p < 1, "drop_words: expected a probability in [0, 1), got ", p);
  if (p == 0) return tokens;
  const auto drop = torch::rand(tokens.sizes(), tokens.options().dtype(torch::kFloat)) < p;
  return tokens.masked_fill(drop & (tokens > unk_id), unk_id);
}

StreamBatcher::StreamBatcher(const std::vector<int64_t>& ids, int64_t batch_size) {
  TORCH_CHECK(batch_size > 0, "StreamBatcher: expected batch_size > 0, got ", batch_size);
  const int64_t n = static_cast<int64_t>(ids.size()) / batch_size;
  TORCH_CHECK(n >= 2, "StreamBatcher: ", ids.size(), " tokens are too few for ", batch_size,
              " streams of at least 2 tokens");
  data_ = torch::from_blob(const_cast<int64_t*>(ids.data()), {batch_size, n}, torch::kLong)
              .t()
              .contiguous();
}

int64_t StreamBatcher::num_windows(int64_t bptt) const {
  return (data_.size(0) - 1 + bptt - 1) / bptt;
}

std::pair<torch::Tensor, torch::Tensor> StreamBatcher::window(int64_t k, int64_t bptt) const {
  const int64_t start = k * bptt;
  TORCH_CHECK(start < data_.size(0) - 1, "StreamBatcher: window ", k, " is past the data");
  const int64_t T = std::min(bptt, data_.size(0) - 1 - start);
  return {data_.narrow(0, start, T), data_.narrow(0, start + 1, T)};
}

}  // namespace rnnkit::data

#pragma once
// The n-gram language model, rnnkit-lm's baseline, over the same tokens, vocabulary, <unk> and
// <eos> as the recurrent model, so that perplexities compare.
//
// P(w | h) with h the previous n-1 tokens of the stream (which starts with <eos>):
//  - add_delta:  (c(hw) + δ) / (c(h) + δV) at the full order only;
//  - backoff:    the same, backing off to shorter histories while c(h) = 0 (docs/equations.md);
//  - kn:         interpolated modified Kneser–Ney (Chen & Goodman 1998): three discounts per
//                order from the counts of counts, continuation counts below the top order,
//                interpolated down to the uniform distribution.
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <rnnkit/data/vocab.h>

namespace rnnkit::lm {

enum class Smoothing { kAddDelta, kBackoff, kKneserNey };
Smoothing parse_smoothing(const std::string& name);  ///< add_delta, backoff, kn
std::string to_string(Smoothing s);

class NGramModel {
 public:
  static constexpr int kMaxOrder = 5;

  /// `level` ("char" or "word") says how text is tokenized for this model; it is saved with it.
  NGramModel(int order, Smoothing smoothing, double delta, data::Vocab vocab,
             std::string level = "word");

  /// Counts the n-grams of a token stream (ids, starting with <eos>).
  void train(const std::vector<int64_t>& ids);
  /// ln P(w | history); `history` holds the preceding tokens, oldest first (any length).
  double logprob(const int64_t* history, size_t history_len, int64_t w) const;
  /// Mean cross-entropy (nats) over every token of ids but the first (the <eos> start).
  double cross_entropy(const std::vector<int64_t>& ids, int64_t* count = nullptr) const;
  /// Draws `length` tokens after `prompt` (never <pad>, <bos>, <unk>); stops at <eos> if asked.
  std::vector<int64_t> sample(std::vector<int64_t> prompt, int64_t length, bool stop_at_eos,
                              uint64_t seed) const;

  void save(const std::string& path) const;
  static NGramModel load(const std::string& path);
  /// The same from a file's bytes (`path` names it in messages): the header's length and CRC
  /// are checked before the body is parsed, and counts that cannot fit the file are refused.
  static NGramModel from_bytes(const std::string& bytes, const std::string& path);
  /// A model file's bytes for `body`: the header line with its CRC-32 and length, then `body`.
  static std::string with_header(const std::string& body);

  int order() const { return order_; }
  Smoothing smoothing() const { return smoothing_; }
  const data::Vocab& vocab() const { return vocab_; }
  const std::string& level() const { return level_; }
  /// Distinct n-grams of each order (index 1..order).
  std::vector<size_t> sizes() const;

 private:
  /// An n-gram packed into 128 bits: up to 5 ids of 24 bits (vocabularies up to 16M types).
  struct Key {
    uint64_t lo = 0, hi = 0;
    bool operator==(const Key& o) const { return lo == o.lo && hi == o.hi; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return k.lo * 0x9E3779B97F4A7C15ULL ^ (k.hi + (k.hi << 7));
    }
  };
  struct ContextStats {
    int64_t total = 0;           ///< Σ_w c(hw)
    std::array<int64_t, 3> n{};  ///< words w with c(hw) = 1, = 2, >= 3
  };
  using Counts = std::unordered_map<Key, int64_t, KeyHash>;
  static Key pack(const int64_t* ids, int n);

  void finalize();  // derived statistics from the raw counts
  double prob(const int64_t* h, int hlen, int64_t w) const;
  double prob_kn(const int64_t* h, int k, int64_t w) const;

  int order_;
  Smoothing smoothing_;
  double delta_;
  data::Vocab vocab_;
  std::string level_;
  std::vector<Counts> raw_;        // [k]: k-gram -> count
  std::vector<Counts> kn_counts_;  // [k]: the counts KN uses (continuation below top)
  std::vector<std::unordered_map<Key, ContextStats, KeyHash>> ctx_;  // [k]: (k-1)-gram stats
  std::vector<std::array<double, 3>> discount_;                      // [k]: D1, D2, D3+
};

}  // namespace rnnkit::lm

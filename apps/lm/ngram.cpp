#include "ngram.h"

#include <cstdio>

#include <cstring>

#include <rnnkit/train/crc32.h>
#include <rnnkit/train/system.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <rnnkit/data/text.h>

namespace rnnkit::lm {

Smoothing parse_smoothing(const std::string& name) {
  if (name == "add_delta") return Smoothing::kAddDelta;
  if (name == "backoff") return Smoothing::kBackoff;
  if (name == "kn") return Smoothing::kKneserNey;
  throw std::invalid_argument("unknown smoothing '" + name +
                              "'; expected add_delta, backoff or kn");
}

std::string to_string(Smoothing s) {
  switch (s) {
    case Smoothing::kAddDelta:
      return "add_delta";
    case Smoothing::kBackoff:
      return "backoff";
    case Smoothing::kKneserNey:
      return "kn";
  }
  return "?";
}

NGramModel::NGramModel(int order, Smoothing smoothing, double delta, data::Vocab vocab,
                       std::string level)
    : order_(order),
      smoothing_(smoothing),
      delta_(delta),
      vocab_(std::move(vocab)),
      level_(std::move(level)) {
  if (order < 1 || order > kMaxOrder) {
    throw std::invalid_argument("n-gram order must be in [1, 5], got " + std::to_string(order));
  }
  if (smoothing != Smoothing::kKneserNey && !(delta > 0)) {
    throw std::invalid_argument("add-δ smoothing needs delta > 0, got " + std::to_string(delta));
  }
  if (vocab_.size() >= (1 << 24)) throw std::invalid_argument("vocabulary too large for n-grams");
  raw_.resize(order + 1);
  kn_counts_.resize(order + 1);
  ctx_.resize(order + 1);
  discount_.resize(order + 1);
}

NGramModel::Key NGramModel::pack(const int64_t* ids, int n) {
  // The length goes in too, so that (a) and (0, a) differ.
  Key k;
  k.hi = static_cast<uint64_t>(n) << 60;
  for (int i = 0; i < n; ++i) {
    const auto id = static_cast<uint64_t>(ids[i]) & 0xFFFFFF;
    if (i < 2)
      k.lo |= id << (24 * i);
    else if (i == 2)
      k.lo |= id << 48, k.hi |= id >> 16;
    else
      k.hi |= id << (8 + 24 * (i - 3));
  }
  return k;
}

void NGramModel::train(const std::vector<int64_t>& ids) {
  for (size_t i = 1; i < ids.size(); ++i) {
    for (int k = 1; k <= order_ && static_cast<size_t>(k) <= i + 1; ++k) {
      ++raw_[k][pack(&ids[i + 1 - k], k)];
    }
  }
  finalize();
}

void NGramModel::finalize() {
  // Counts per order: raw at the top (and for add-δ/backoff everywhere); for Kneser–Ney, the
  // continuation count N1+(• g) of each lower-order n-gram g: how many distinct words precede it.
  for (int k = 1; k <= order_; ++k) kn_counts_[k].clear(), ctx_[k].clear();
  std::vector<std::vector<std::pair<std::vector<int64_t>, int64_t>>> grams(order_ + 1);
  // Unpacking keeps this independent of the packing layout.
  auto unpack = [](const Key& key, int n) {
    std::vector<int64_t> ids(n);
    for (int i = 0; i < n; ++i) {
      uint64_t id;
      if (i < 2)
        id = key.lo >> (24 * i);
      else if (i == 2)
        id = (key.lo >> 48) | (key.hi << 16);
      else
        id = key.hi >> (8 + 24 * (i - 3));
      ids[i] = static_cast<int64_t>(id & 0xFFFFFF);
    }
    return ids;
  };
  for (int k = 1; k <= order_; ++k) {
    for (const auto& [key, c] : raw_[k]) grams[k].push_back({unpack(key, k), c});
  }
  for (int k = 1; k <= order_; ++k) {
    if (smoothing_ == Smoothing::kKneserNey && k < order_) {
      for (const auto& [g, c] : grams[k + 1]) ++kn_counts_[k][pack(g.data() + 1, k)];
    } else {
      kn_counts_[k] = raw_[k];
    }
    std::array<int64_t, 5> count_of_counts{};
    for (const auto& [key, c] : kn_counts_[k]) {
      const auto g = unpack(key, k);
      auto& st = ctx_[k][pack(g.data(), k - 1)];
      st.total += c;
      ++st.n[std::min<int64_t>(c, 3) - 1];
      if (c <= 4) ++count_of_counts[c];
    }
    // Chen & Goodman's estimates; fall back to 0.5-ish values on tiny data.
    const double n1 = count_of_counts[1], n2 = count_of_counts[2], n3 = count_of_counts[3],
                 n4 = count_of_counts[4];
    const double Y = n1 > 0 && n2 > 0 ? n1 / (n1 + 2 * n2) : 0.5;
    auto clamp = [](double d, double hi) {
      return std::isfinite(d) ? std::clamp(d, 0.0, hi) : hi / 2;
    };
    discount_[k] = {clamp(1 - 2 * Y * n2 / n1, 1.0), clamp(2 - 3 * Y * n3 / n2, 2.0),
                    clamp(3 - 4 * Y * n4 / n3, 3.0)};
  }
}

double NGramModel::prob_kn(const int64_t* h, int k, int64_t w) const {
  // P_k(w | h) with h the k-1 preceding ids; recursion down to the uniform distribution.
  const double V = static_cast<double>(vocab_.size());
  if (k == 0) return 1.0 / V;
  // The lower order drops the oldest word; from a unigram (k = 1, maybe no history at all, h null)
  // it goes to the uniform distribution, which reads none.
  const double lower = prob_kn(k > 1 ? h + 1 : h, k - 1, w);
  const auto it = ctx_[k].find(pack(h, k - 1));
  if (it == ctx_[k].end() || it->second.total == 0) return lower;
  const ContextStats& st = it->second;
  std::vector<int64_t> g(h, h + (k - 1));
  g.push_back(w);
  const auto c_it = kn_counts_[k].find(pack(g.data(), k));
  const int64_t c = c_it == kn_counts_[k].end() ? 0 : c_it->second;
  const auto& D = discount_[k];
  const double discounted = c > 0 ? std::max(c - D[std::min<int64_t>(c, 3) - 1], 0.0) : 0.0;
  const double gamma = (D[0] * st.n[0] + D[1] * st.n[1] + D[2] * st.n[2]) / st.total;
  return discounted / st.total + gamma * lower;
}

double NGramModel::prob(const int64_t* h, int hlen, int64_t w) const {
  const double V = static_cast<double>(vocab_.size());
  if (smoothing_ == Smoothing::kKneserNey) return prob_kn(h, hlen + 1, w);
  for (int len = hlen; len >= 0; --len) {
    const int64_t* hh = h + (hlen - len);
    const auto it = ctx_[len + 1].find(pack(hh, len));
    const int64_t ch = it == ctx_[len + 1].end() ? 0 : it->second.total;
    if (ch > 0 || smoothing_ == Smoothing::kAddDelta || len == 0) {
      std::vector<int64_t> g(hh, hh + len);
      g.push_back(w);
      const auto c_it = raw_[len + 1].find(pack(g.data(), len + 1));
      const double c = c_it == raw_[len + 1].end() ? 0.0 : static_cast<double>(c_it->second);
      return (c + delta_) / (static_cast<double>(ch) + delta_ * V);
    }
  }
  return 1.0 / V;
}

double NGramModel::logprob(const int64_t* history, size_t history_len, int64_t w) const {
  const int hlen = static_cast<int>(std::min<size_t>(history_len, order_ - 1));
  return std::log(prob(history + history_len - hlen, hlen, w));
}

double NGramModel::cross_entropy(const std::vector<int64_t>& ids, int64_t* count) const {
  double total = 0;
  for (size_t i = 1; i < ids.size(); ++i) total -= logprob(ids.data(), i, ids[i]);
  const auto n = static_cast<int64_t>(ids.size()) - 1;
  if (count) *count = n;
  return n > 0 ? total / n : 0.0;
}

std::vector<int64_t> NGramModel::sample(std::vector<int64_t> ids, int64_t length, bool stop_at_eos,
                                        uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::vector<double> p(vocab_.size());
  std::vector<int64_t> out;
  for (int64_t n = 0; n < length; ++n) {
    for (int64_t w = 0; w < vocab_.size(); ++w) {
      const bool banned =
          w == data::Vocab::kPad || w == data::Vocab::kBos || w == data::Vocab::kUnk;
      p[w] = banned ? 0.0 : std::exp(logprob(ids.data(), ids.size(), w));
    }
    const int64_t w = std::discrete_distribution<int64_t>(p.begin(), p.end())(rng);
    if (w == data::Vocab::kEos && stop_at_eos) break;
    ids.push_back(w);
    out.push_back(w);
  }
  return out;
}

std::vector<size_t> NGramModel::sizes() const {
  std::vector<size_t> s;
  for (int k = 1; k <= order_; ++k) s.push_back(raw_[k].size());
  return s;
}

// Version 2: a header line "#rnnkit-ngram v2 CRC LENGTH" (the CRC-32 of the body in hex and its
// length in bytes), then the body: "ORDER SMOOTHING DELTA LEVEL VOCAB_BYTES", the vocabulary,
// and for each order its count of n-grams and one "LO HI COUNT" line each. The header is checked
// against the file's size and the body's CRC before anything is parsed, as checkpoints are: an
// edited count is refused, not used.
namespace {
constexpr const char* kNgramMagicV1 = "#rnnkit-ngram v1";
constexpr const char* kNgramMagic = "#rnnkit-ngram v2";

uint32_t crc_of(const std::string& s) { return train::crc32_of(s.data(), s.size()); }
}  // namespace

void NGramModel::save(const std::string& path) const {
  std::ostringstream body;
  const std::string vocab = vocab_.to_string();
  body << order_ << " " << to_string(smoothing_) << " " << delta_ << " " << level_ << " "
       << vocab.size() << "\n"
       << vocab;
  for (int k = 1; k <= order_; ++k) {
    body << raw_[k].size() << "\n";
    for (const auto& [key, c] : raw_[k]) body << key.lo << " " << key.hi << " " << c << "\n";
  }
  train::write_text_atomically(path, with_header(body.str()));
}

std::string NGramModel::with_header(const std::string& body) {
  char header[80];
  std::snprintf(header, sizeof(header), "%s %08x %zu\n", kNgramMagic, crc_of(body), body.size());
  return header + body;
}

NGramModel NGramModel::load(const std::string& path) {
  return from_bytes(train::read_regular_file(path, uint64_t{1} << 32, "n-gram model"), path);
}

NGramModel NGramModel::from_bytes(const std::string& bytes, const std::string& path) {
  const size_t eol = bytes.find('\n');
  const std::string header = bytes.substr(0, std::min<size_t>(eol, 100));
  if (header == kNgramMagicV1) {
    throw data::DataError(path, 1,
                          "an n-gram model without a checksum (rnnkit 0.1's format); it cannot be "
                          "verified, so it is refused: build it again with rnnkit-lm ngram");
  }
  char crc_text[16] = {};
  size_t length = 0;
  int used = 0;
  if (eol == std::string::npos || header.rfind(std::string(kNgramMagic) + " ", 0) != 0 ||
      std::sscanf(header.c_str() + std::strlen(kNgramMagic), " %8[0-9a-f] %zu%n", crc_text, &length,
                  &used) != 2 ||
      std::strlen(kNgramMagic) + static_cast<size_t>(used) != header.size()) {
    throw data::DataError(path, 1,
                          "not an rnnkit n-gram model (expected '#rnnkit-ngram v2 CRC LENGTH')");
  }
  const std::string body = bytes.substr(eol + 1);
  if (length != body.size()) {
    throw data::DataError(
        path, 0,
        "the n-gram model is " +
            std::string(length > body.size() ? "truncated" : "longer than it says") + " (" +
            std::to_string(body.size()) + " bytes after the header, " + std::to_string(length) +
            " expected)");
  }
  const uint32_t stored = static_cast<uint32_t>(std::strtoul(crc_text, nullptr, 16));
  const uint32_t actual = crc_of(body);
  if (stored != actual) {
    char buf[120];
    std::snprintf(buf, sizeof(buf), "checksum mismatch (stored %08x, computed %08x)", stored,
                  actual);
    throw data::DataError(path, 0,
                          std::string("the n-gram model is damaged: ") + buf +
                              "; it is refused rather than used (build it again)");
  }
  std::istringstream in(body);
  int order;
  std::string smoothing, level;
  double delta;
  size_t vocab_bytes;
  if (!(in >> order >> smoothing >> delta >> level >> vocab_bytes)) {
    throw data::DataError(path, 2, "expected: order smoothing delta level vocabulary-bytes");
  }
  in.get();
  if (vocab_bytes > body.size()) {
    throw data::DataError(path, 2, "the vocabulary is said to be longer than the file");
  }
  std::string vocab(vocab_bytes, '\0');
  in.read(vocab.data(), static_cast<std::streamsize>(vocab_bytes));
  NGramModel m = [&] {
    try {
      return NGramModel(order, parse_smoothing(smoothing), delta,
                        data::Vocab::from_string(vocab, path), level);
    } catch (const std::invalid_argument& e) {
      throw data::DataError(path, 2, e.what());
    }
  }();
  for (int k = 1; k <= order; ++k) {
    size_t n;
    if (!(in >> n))
      throw data::DataError(path, 0,
                            "truncated: missing the " + std::to_string(k) + "-gram counts");
    // Each n-gram takes at least 6 bytes ("0 0 1\n"): a larger count is a lie, not a reserve.
    if (n > body.size() / 6) {
      throw data::DataError(path, 0,
                            "the " + std::to_string(k) + "-gram count " + std::to_string(n) +
                                " is more than the file can hold");
    }
    m.raw_[k].reserve(n);
    int64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
      Key key;
      int64_t c;
      if (!(in >> key.lo >> key.hi >> c)) {
        throw data::DataError(path, 0, "truncated in the " + std::to_string(k) + "-gram counts");
      }
      // Counts are summed per context: bounded so that no sum can overflow (fuzz_ngram).
      constexpr int64_t kMostCount = int64_t{1} << 40;
      if (c < 1 || c > kMostCount) {
        throw data::DataError(path, 0,
                              "a " + std::to_string(k) + "-gram count of " + std::to_string(c) +
                                  "; counts are in [1, 2^40]");
      }
      total += c;
      if (total > (int64_t{1} << 62)) {
        throw data::DataError(path, 0,
                              "the " + std::to_string(k) + "-gram counts add up past 2^62");
      }
      m.raw_[k][key] = c;
    }
  }
  m.finalize();
  return m;
}

}  // namespace rnnkit::lm

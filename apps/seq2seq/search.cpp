#include "search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include <c10/util/Exception.h>

namespace rnnkit::seq2seq {

using torch::Tensor;

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

double normalized(double logprob, int64_t length, double alpha) {
  return alpha == 0 ? logprob : logprob / std::pow(static_cast<double>(length), alpha);
}

Tensor mask_banned(Tensor logp, const SearchOptions& o) {
  for (const int64_t t : o.banned) {
    if (t >= 0 && t < logp.size(1)) logp.select(1, t).fill_(kNegInf);
  }
  return logp;
}

int64_t max_length_of(const SearchOptions& o, size_t b) {
  TORCH_CHECK(b < o.max_lengths.size(), "search: expected a max length for every sentence");
  return std::max<int64_t>(1, o.max_lengths[b]);
}

}  // namespace

void check_search_options(int64_t beam, int64_t n_best, double alpha) {
  if (beam < 1 || beam > kMaxBeam)
    throw std::invalid_argument("--beam must be in 1.." + std::to_string(kMaxBeam) + ", got " +
                                std::to_string(beam));
  if (n_best < 1 || n_best > beam)
    throw std::invalid_argument("--n-best must be in 1..--beam (" + std::to_string(beam) +
                                "), got " + std::to_string(n_best));
  if (!std::isfinite(alpha) || alpha < 0)
    throw std::invalid_argument("--alpha must be a finite number >= 0, got " +
                                std::to_string(alpha));
}

std::vector<Hypothesis> greedy_search(StepModel& model, const SearchOptions& o) {
  const auto B = static_cast<int64_t>(o.max_lengths.size());
  std::vector<Hypothesis> out(static_cast<size_t>(B));
  std::vector<std::vector<Tensor>> att(static_cast<size_t>(B));
  std::vector<bool> done(static_cast<size_t>(B), false);
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b)
    longest = std::max(longest, max_length_of(o, static_cast<size_t>(b)));
  Tensor last = torch::full({B}, o.bos, torch::kLong);
  for (int64_t t = 1; t <= longest + 1; ++t) {
    Tensor logp = mask_banned(model.step(last).to(torch::kDouble).cpu(), o);  // [B, V]
    const Tensor a = o.keep_attention ? model.last_attention() : Tensor();
    auto acc = logp.accessor<double, 2>();
    std::vector<int64_t> next(static_cast<size_t>(B), o.eos);
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      const auto i = static_cast<size_t>(b);
      if (done[i]) continue;
      int64_t best = o.eos;
      if (t <= max_length_of(o, i)) {
        double bv = kNegInf;
        for (int64_t v = 0; v < logp.size(1); ++v) {
          if (acc[b][v] > bv) bv = acc[b][v], best = v;  // the first of equal maxima, as argmax
        }
      }
      out[i].logprob += acc[b][best];
      if (a.defined()) att[i].push_back(a[b].detach().cpu());
      if (best == o.eos) {
        done[i] = true;
        out[i].score =
            normalized(out[i].logprob, static_cast<int64_t>(out[i].tokens.size()) + 1, o.alpha);
        if (a.defined()) out[i].attention = torch::stack(att[i]);
      } else {
        out[i].tokens.push_back(best);
        all_done = false;
      }
      next[i] = best;
    }
    if (all_done) break;
    last = torch::tensor(next, torch::kLong);
  }
  return out;
}

std::vector<std::vector<Hypothesis>> beam_search(StepModel& model, const SearchOptions& o) {
  const auto B = static_cast<int64_t>(o.max_lengths.size());
  const int64_t K = o.beam;
  check_search_options(K, o.n_best, o.alpha);
  // Row b * K + k is beam k of sentence b; beams 1..K-1 start dead (score -inf).
  model.reorder(torch::arange(B, torch::kLong).repeat_interleave(K));
  std::vector<double> scores(static_cast<size_t>(B * K), kNegInf);
  for (int64_t b = 0; b < B; ++b) scores[static_cast<size_t>(b * K)] = 0;
  std::vector<std::vector<int64_t>> prefix(static_cast<size_t>(B * K));
  std::vector<std::vector<Tensor>> att(static_cast<size_t>(B * K));
  std::vector<std::vector<Hypothesis>> finished(static_cast<size_t>(B));
  std::vector<bool> done(static_cast<size_t>(B), false);
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b)
    longest = std::max(longest, max_length_of(o, static_cast<size_t>(b)));
  Tensor last = torch::full({B * K}, o.bos, torch::kLong);
  auto by_score = [](const Hypothesis& x, const Hypothesis& y) { return x.score > y.score; };

  for (int64_t t = 1; t <= longest + 1; ++t) {
    Tensor logp = mask_banned(model.step(last).to(torch::kDouble).cpu(), o);  // [B*K, V]
    const int64_t V = logp.size(1);
    const Tensor a = o.keep_attention ? model.last_attention() : Tensor();
    Tensor cand = logp + torch::tensor(scores, torch::kDouble).unsqueeze(1);  // [B*K, V]
    const int64_t take = std::min<int64_t>(2 * K, K * V);
    const auto top = cand.view({B, K * V}).topk(take, 1);  // [B, 2K]
    auto val = std::get<0>(top).accessor<double, 2>();
    auto idx = std::get<1>(top).accessor<int64_t, 2>();

    std::vector<int64_t> origin(static_cast<size_t>(B * K)),
        next(static_cast<size_t>(B * K), o.eos);
    std::vector<double> new_scores(static_cast<size_t>(B * K), kNegInf);
    std::vector<std::vector<int64_t>> new_prefix(static_cast<size_t>(B * K));
    std::vector<std::vector<Tensor>> new_att(static_cast<size_t>(B * K));
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      const auto bi = static_cast<size_t>(b);
      for (int64_t k = 0; k < K; ++k) origin[static_cast<size_t>(b * K + k)] = b * K;
      if (done[bi]) continue;
      const int64_t max_len = max_length_of(o, bi);
      auto& fin = finished[bi];
      if (t > max_len) {  // at the maximum length every live beam ends with <eos>
        for (int64_t k = 0; k < K; ++k) {
          const auto r = static_cast<size_t>(b * K + k);
          if (scores[r] == kNegInf) continue;
          Hypothesis h;
          h.tokens = prefix[r];
          h.logprob = scores[r] + logp[b * K + k][o.eos].item<double>();
          h.score = normalized(h.logprob, static_cast<int64_t>(h.tokens.size()) + 1, o.alpha);
          if (a.defined()) {
            auto steps = att[r];
            steps.push_back(a[b * K + k].detach().cpu());
            h.attention = torch::stack(steps);
          }
          fin.push_back(std::move(h));
        }
        std::stable_sort(fin.begin(), fin.end(), by_score);
        done[bi] = true;
        continue;
      }
      int64_t alive = 0;
      bool top_is_eos = false;
      for (int64_t j = 0; j < take && alive < K; ++j) {
        const double s = val[b][j];
        if (s == kNegInf) break;
        const int64_t row = b * K + idx[b][j] / V, tok = idx[b][j] % V;
        const auto r = static_cast<size_t>(row);
        if (tok == o.eos) {
          if (j >= K) continue;  // an <eos> outside the top K is not taken
          if (j == 0) top_is_eos = true;
          Hypothesis h;
          h.tokens = prefix[r];
          h.logprob = s;
          h.score = normalized(h.logprob, static_cast<int64_t>(h.tokens.size()) + 1, o.alpha);
          if (a.defined()) {
            auto steps = att[r];
            steps.push_back(a[row].detach().cpu());
            h.attention = torch::stack(steps);
          }
          fin.push_back(std::move(h));
          continue;
        }
        const auto slot = static_cast<size_t>(b * K + alive);
        origin[slot] = row;
        next[slot] = tok;
        new_scores[slot] = s;
        new_prefix[slot] = prefix[r];
        new_prefix[slot].push_back(tok);
        if (a.defined()) {
          new_att[slot] = att[r];
          new_att[slot].push_back(a[row].detach().cpu());
        }
        ++alive;
      }
      std::stable_sort(fin.begin(), fin.end(), by_score);
      bool is_done = alive == 0;
      if (!is_done && static_cast<int64_t>(fin.size()) >= o.n_best) {
        const double worst_kept = fin[static_cast<size_t>(o.n_best - 1)].score;
        // The best a live beam can still reach: its score only falls, its length at most
        // max_len + 1.
        const double bound =
            normalized(new_scores[static_cast<size_t>(b * K)], max_len + 1, o.alpha);
        // Beam 1 is greedy: it ends when its best extension is <eos>. An n-best list waits
        // until no live beam can enter it.
        is_done = (top_is_eos && o.n_best == 1) || bound <= worst_kept;
      }
      if (is_done) {
        done[bi] = true;
        for (int64_t k = 0; k < K; ++k) new_scores[static_cast<size_t>(b * K + k)] = kNegInf;
      } else {
        all_done = false;
      }
    }
    if (all_done) break;
    const Tensor index = torch::tensor(origin, torch::kLong);
    model.reorder(index);
    scores = std::move(new_scores);
    prefix = std::move(new_prefix);
    att = std::move(new_att);
    last = torch::tensor(next, torch::kLong);
  }
  for (auto& fin : finished) {
    std::stable_sort(fin.begin(), fin.end(), by_score);
    if (static_cast<int64_t>(fin.size()) > o.n_best) fin.resize(static_cast<size_t>(o.n_best));
  }
  return finished;
}

}  // namespace rnnkit::seq2seq

#include "bleu.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <rnnkit/data/text.h>

namespace rnnkit::seq2seq {

namespace {

using Ngrams = std::map<std::vector<std::string>, int64_t>;

Ngrams count_ngrams(const std::vector<std::string>& tokens, size_t n) {
  Ngrams out;
  for (size_t i = 0; i + n <= tokens.size(); ++i)
    ++out[std::vector<std::string>(tokens.begin() + i, tokens.begin() + i + n)];
  return out;
}

std::vector<std::string> split_whitespace(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

double brevity_penalty(int64_t c, int64_t r) {
  if (c >= r) return 1.0;
  if (c == 0) return 0.0;
  return std::exp(1.0 - static_cast<double>(r) / static_cast<double>(c));
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size())
    s.replace(at, from.size(), to);
  return s;
}

}  // namespace

void BleuStats::add(const std::vector<std::string>& hyp, const std::vector<std::string>& ref) {
  hyp_len += static_cast<int64_t>(hyp.size());
  ref_len += static_cast<int64_t>(ref.size());
  for (size_t n = 1; n <= 4; ++n) {
    const auto h = count_ngrams(hyp, n), r = count_ngrams(ref, n);
    for (const auto& [gram, count] : h) {
      totals[n - 1] += count;
      const auto it = r.find(gram);
      if (it != r.end()) matches[n - 1] += std::min(count, it->second);  // clipped
    }
  }
}

Bleu multi_bleu(const BleuStats& s) {
  Bleu b;
  b.kind = "multi-bleu";
  b.hyp_len = s.hyp_len;
  b.ref_len = s.ref_len;
  b.brevity_penalty = brevity_penalty(s.hyp_len, s.ref_len);
  double log_sum = 0;
  bool zero = s.hyp_len == 0;
  for (size_t n = 0; n < 4; ++n) {
    const double p = s.totals[n] > 0 ? static_cast<double>(s.matches[n]) / s.totals[n] : 0.0;
    b.precisions[n] = 100 * p;
    if (p == 0)
      zero = true;  // multi-bleu.perl's my_log(0) = -9999999999: BLEU 0
    else
      log_sum += std::log(p);
  }
  b.bleu = zero ? 0.0 : 100 * b.brevity_penalty * std::exp(log_sum / 4);
  return b;
}

Bleu sacre_bleu(const BleuStats& s) {
  Bleu b;
  b.kind = "sacrebleu-13a";
  b.hyp_len = s.hyp_len;
  b.ref_len = s.ref_len;
  b.brevity_penalty = brevity_penalty(s.hyp_len, s.ref_len);
  double smooth = 1, log_sum = 0;
  bool zero = false;
  for (size_t n = 0; n < 4; ++n) {
    if (s.totals[n] == 0) {  // sacreBLEU stops at the first order with no n-gram: precision 0
      zero = true;
      break;
    }
    if (s.matches[n] == 0) {
      smooth *= 2;
      b.precisions[n] = 100.0 / (smooth * static_cast<double>(s.totals[n]));
    } else {
      b.precisions[n] = 100.0 * static_cast<double>(s.matches[n]) / s.totals[n];
    }
    log_sum += std::log(b.precisions[n]);
  }
  b.bleu = zero ? 0.0 : b.brevity_penalty * std::exp(log_sum / 4);
  return b;
}

std::vector<std::string> tokenize_13a(const std::string& input) {
  std::string line = replace_all(input, "<skipped>", "");
  line = replace_all(line, "-\n", "");
  line = replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    line = replace_all(line, "&quot;", "\"");
    line = replace_all(line, "&amp;", "&");
    line = replace_all(line, "&lt;", "<");
    line = replace_all(line, "&gt;", ">");
  }
  static const std::regex punct(R"(([\{-\~\[-\` -\&\(-\+\:-\@\/]))");
  static const std::regex period_comma_before(R"(([^0-9])([\.,]))");
  static const std::regex period_comma_after(R"(([\.,])([^0-9]))");
  static const std::regex dash_after_digit(R"(([0-9])(-))");
  line = std::regex_replace(line, punct, " $1 ");
  line = std::regex_replace(line, period_comma_before, "$1 $2 ");
  line = std::regex_replace(line, period_comma_after, " $1 $2");
  line = std::regex_replace(line, dash_after_digit, "$1 $2 ");
  return split_whitespace(line);
}

Bleu corpus_bleu(const std::vector<std::string>& hypotheses,
                 const std::vector<std::string>& references, const std::string& kind,
                 bool lowercase) {
  if (hypotheses.size() != references.size()) {
    throw std::invalid_argument("BLEU: " + std::to_string(hypotheses.size()) +
                                " hypotheses against " + std::to_string(references.size()) +
                                " references; expected one reference per line");
  }
  if (kind != "multi-bleu" && kind != "sacrebleu")
    throw std::invalid_argument("BLEU: expected kind multi-bleu or sacrebleu, got '" + kind + "'");
  BleuStats s;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const std::string h = lowercase ? data::to_lower(hypotheses[i]) : hypotheses[i];
    const std::string r = lowercase ? data::to_lower(references[i]) : references[i];
    if (kind == "sacrebleu")
      s.add(tokenize_13a(h), tokenize_13a(r));
    else
      s.add(split_whitespace(h), split_whitespace(r));
  }
  Bleu b = kind == "sacrebleu" ? sacre_bleu(s) : multi_bleu(s);
  if (lowercase) b.kind += "-lc";
  return b;
}

}  // namespace rnnkit::seq2seq

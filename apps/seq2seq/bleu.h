#pragma once
// Corpus BLEU (Papineni et al. 2002) with one reference, in the two forms translation papers
// report, labelled so that they are never mixed:
//
//   multi-bleu: Moses' multi-bleu.perl over tokenized text (tokens are what whitespace
//               separates): what the Multi30k papers report on the lc.norm.tok files;
//   sacrebleu:  sacreBLEU's default over detokenized text: its 13a tokenizer, mixed case, and
//               its default exponential smoothing of zero n-gram counts.
//
//   p_n = Σ_sentences clipped n-gram matches / Σ_sentences hypothesis n-grams     n = 1..4
//   BP  = 1 if c ≥ r, else exp(1 - r / c)        c, r: hypothesis and reference token counts
//   BLEU = 100 · BP · exp(¼ Σ_n log p_n)         (0 when some p_n is 0, unless smoothed)
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace rnnkit::seq2seq {

/// The sufficient statistics of corpus BLEU, summed over sentences.
struct BleuStats {
  std::array<int64_t, 4> matches{}, totals{};
  int64_t hyp_len = 0, ref_len = 0;
  void add(const std::vector<std::string>& hypothesis, const std::vector<std::string>& reference);
};

struct Bleu {
  double bleu = 0;                     ///< 0 to 100
  std::array<double, 4> precisions{};  ///< p_1..p_4 in percent (smoothed ones for sacrebleu)
  double brevity_penalty = 0;
  int64_t hyp_len = 0, ref_len = 0;
  std::string kind;  ///< "multi-bleu" or "sacrebleu-13a" (with "-lc" when lowercased)
};

/// multi-bleu.perl's arithmetic over `s`: 0 when any precision is 0 or the hypothesis is empty.
Bleu multi_bleu(const BleuStats& s);
/// sacreBLEU's corpus_score arithmetic with smooth_method "exp" (a zero count at order n counts
/// as 1 / 2^k of the n-grams, k = 1, 2, ... the k-th such order).
Bleu sacre_bleu(const BleuStats& s);

/// sacreBLEU's 13a tokenizer (mteval-v13a.pl's): unescapes &quot; &amp; &lt; &gt;, splits ASCII
/// punctuation, and periods and commas unless between digits, and a dash after a digit.
std::vector<std::string> tokenize_13a(const std::string& line);

/// Corpus BLEU of `hypotheses` against `references`, line by line (the same count: checked by
/// the caller). kind: "multi-bleu" (whitespace tokens) or "sacrebleu" (13a); `lowercase` lowers
/// both sides first.
Bleu corpus_bleu(const std::vector<std::string>& hypotheses,
                 const std::vector<std::string>& references, const std::string& kind,
                 bool lowercase);

}  // namespace rnnkit::seq2seq

#include "conlleval.h"

#include <stdexcept>

#include <fmt/core.h>

namespace rnnkit::ner {
namespace {

/// conlleval's split: /^([^-]*)-(.*)$/ gives chunk tag and type; otherwise the whole tag is the
/// chunk tag. Perl treats a type "0" as false, hence empty.
void split(const std::string& tag, std::string& chunk, std::string& type) {
  const auto dash = tag.find('-');
  if (dash == std::string::npos) {
    chunk = tag;
    type.clear();
  } else {
    chunk = tag.substr(0, dash);
    type = tag.substr(dash + 1);
  }
  if (type == "0") type.clear();
}

// endOfChunk and startOfChunk, rule for rule.
bool end_of_chunk(const std::string& prev_tag, const std::string& tag, const std::string& prev_type,
                  const std::string& type) {
  bool end = false;
  if (prev_tag == "B" && tag == "B") end = true;
  if (prev_tag == "B" && tag == "O") end = true;
  if (prev_tag == "I" && tag == "B") end = true;
  if (prev_tag == "I" && tag == "O") end = true;
  if (prev_tag == "E" && tag == "E") end = true;
  if (prev_tag == "E" && tag == "I") end = true;
  if (prev_tag == "E" && tag == "O") end = true;
  if (prev_tag != "O" && prev_tag != "." && prev_type != type) end = true;
  if (prev_tag == "]" || prev_tag == "[") end = true;
  return end;
}

bool start_of_chunk(const std::string& prev_tag, const std::string& tag,
                    const std::string& prev_type, const std::string& type) {
  bool start = false;
  if (prev_tag == "B" && tag == "B") start = true;
  if (prev_tag == "I" && tag == "B") start = true;
  if (prev_tag == "O" && tag == "B") start = true;
  if (prev_tag == "O" && tag == "I") start = true;
  if (prev_tag == "E" && tag == "E") start = true;
  if (prev_tag == "E" && tag == "I") start = true;
  if (prev_tag == "O" && tag == "E") start = true;
  if (tag != "O" && tag != "." && prev_type != type) start = true;
  if (tag == "[" || tag == "]") start = true;
  return start;
}

double ratio(int64_t a, int64_t b) { return b > 0 ? static_cast<double>(a) / b : 0.0; }
double f_score(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

}  // namespace

void Conlleval::add(const std::vector<std::string>& gold, const std::vector<std::string>& guessed) {
  if (gold.size() != guessed.size()) {
    throw std::invalid_argument("conlleval: " + std::to_string(gold.size()) + " gold tags but " +
                                std::to_string(guessed.size()) + " guessed tags in one sentence");
  }
  for (size_t i = 0; i < gold.size(); ++i) step(gold[i], guessed[i], false);
  step("O", "O", true);  // the blank line after the sentence
}

void Conlleval::step(const std::string& correct_tag, const std::string& guessed_tag,
                     bool boundary) {
  std::string correct, correct_type, guessed, guessed_type;
  split(guessed_tag, guessed, guessed_type);
  split(correct_tag, correct, correct_type);
  if (boundary) guessed = "O";

  const bool end_c = end_of_chunk(last_correct_, correct, last_correct_type_, correct_type);
  const bool end_g = end_of_chunk(last_guessed_, guessed, last_guessed_type_, guessed_type);
  const bool start_c = start_of_chunk(last_correct_, correct, last_correct_type_, correct_type);
  const bool start_g = start_of_chunk(last_guessed_, guessed, last_guessed_type_, guessed_type);
  if (in_correct_) {
    if (end_c && end_g && last_guessed_type_ == last_correct_type_) {
      in_correct_ = false;
      ++correct_chunks_;
      ++correct_by_type_[last_correct_type_];
    } else if (end_c != end_g || guessed_type != correct_type) {
      in_correct_ = false;
    }
  }
  if (start_c && start_g && guessed_type == correct_type) in_correct_ = true;
  if (start_c) {
    ++found_correct_;
    ++found_correct_by_type_[correct_type];
  }
  if (start_g) {
    ++found_guessed_;
    ++found_guessed_by_type_[guessed_type];
  }
  if (!boundary) {
    if (correct == guessed && guessed_type == correct_type) ++correct_tags_;
    ++tokens_;
  }
  last_guessed_ = guessed;
  last_correct_ = correct;
  last_guessed_type_ = guessed_type;
  last_correct_type_ = correct_type;
}

double Conlleval::accuracy() const { return ratio(correct_tags_, tokens_); }
double Conlleval::precision() const { return ratio(correct_chunks_, found_guessed_); }
double Conlleval::recall() const { return ratio(correct_chunks_, found_correct_); }
double Conlleval::f1() const { return f_score(precision(), recall()); }

std::vector<TypeScore> Conlleval::by_type() const {
  std::map<std::string, TypeScore> all;
  for (const auto& [t, n] : found_correct_by_type_) all[t].found_correct = n;
  for (const auto& [t, n] : found_guessed_by_type_) all[t].found_guessed = n;
  for (const auto& [t, n] : correct_by_type_) all[t].correct = n;
  std::vector<TypeScore> out;
  for (auto& [t, s] : all) {
    s.type = t;
    s.precision = ratio(s.correct, s.found_guessed);
    s.recall = ratio(s.correct, s.found_correct);
    s.f1 = f_score(s.precision, s.recall);
    out.push_back(s);
  }
  return out;
}

std::string Conlleval::report() const {
  std::string r =
      fmt::format("processed {} tokens with {} phrases; found: {} phrases; correct: {}.\n", tokens_,
                  found_correct_, found_guessed_, correct_chunks_);
  if (tokens_ > 0) {
    r += fmt::format("accuracy: {:6.2f}%; precision: {:6.2f}%; recall: {:6.2f}%; FB1: {:6.2f}\n",
                     100 * accuracy(), 100 * precision(), 100 * recall(), 100 * f1());
  }
  for (const auto& s : by_type()) {
    r += fmt::format("{:>17}: precision: {:6.2f}%; recall: {:6.2f}%; FB1: {:6.2f}  {}\n", s.type,
                     100 * s.precision, 100 * s.recall, 100 * s.f1, s.found_guessed);
  }
  return r;
}

}  // namespace rnnkit::ner

#pragma once
// Entity-level precision, recall and F1 exactly as conlleval (CoNLL-2000/2003's evaluation
// script, version 2004-01-26) computes them.
//
// conlleval splits each tag at its first '-' into a chunk tag and a type, and finds chunks with
// its endOfChunk/startOfChunk rules (B, I, E, O; the rules are written out in conlleval.cpp). A
// guessed chunk is correct when it starts and ends where a gold chunk does, with the same type.
// Sentence breaks end every chunk. Two known consequences, kept on purpose: "S-X S-X" is one
// chunk (conlleval has no S rule), and in IOB1 "I-X I-X" is one chunk while "I-X B-X" is two.
//
// One difference: conlleval counts -DOCSTART- lines as tokens in its accuracy; here they are
// not tokens (the readers drop them). Chunk counts, precision, recall and F1 are unaffected.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rnnkit::ner {

struct TypeScore {
  std::string type;
  int64_t found_correct = 0, found_guessed = 0, correct = 0;
  double precision = 0, recall = 0, f1 = 0;  ///< fractions (conlleval prints them x100)
};

class Conlleval {
 public:
  /// Adds one sentence: the gold and the guessed tag of each token.
  void add(const std::vector<std::string>& gold, const std::vector<std::string>& guessed);

  int64_t tokens() const { return tokens_; }
  int64_t correct_tags() const { return correct_tags_; }
  int64_t found_correct() const { return found_correct_; }
  int64_t found_guessed() const { return found_guessed_; }
  int64_t correct_chunks() const { return correct_chunks_; }
  double accuracy() const;
  double precision() const;
  double recall() const;
  double f1() const;
  /// Every type seen in gold or guessed tags, sorted as conlleval sorts them.
  std::vector<TypeScore> by_type() const;
  /// conlleval's text report: the overall lines, then one line per type.
  std::string report() const;

 private:
  void step(const std::string& correct_tag, const std::string& guessed_tag, bool boundary);
  int64_t tokens_ = 0, correct_tags_ = 0, found_correct_ = 0, found_guessed_ = 0,
          correct_chunks_ = 0;
  std::map<std::string, int64_t> found_correct_by_type_, found_guessed_by_type_, correct_by_type_;
  bool in_correct_ = false;
  std::string last_correct_ = "O", last_guessed_ = "O", last_correct_type_, last_guessed_type_;
};

}  // namespace rnnkit::ner

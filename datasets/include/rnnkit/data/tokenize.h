#pragma once
// Raw text into tokens with byte offsets, as the CoNLL-2003 data was tokenized (Penn Treebank
// style), so that a tagger trained on it sees raw text the same way.
#include <string>
#include <vector>

namespace rnnkit::data {

struct TextToken {
  std::string text;
  size_t begin, end;  ///< byte offsets into the line, [begin, end)
};

/// Whitespace, then brackets, quotes and final punctuation split off ("U.S." keeps its period),
/// and the clitics 's, 're, 've, 'll, 'd, 'm and n't as tokens of their own.
std::vector<TextToken> tokenize_ptb(const std::string& line);

/// The code-point offset of byte offset `byte` in UTF-8 `s` (JSON offsets count code points).
size_t code_point_offset(const std::string& s, size_t byte);

}  // namespace rnnkit::data

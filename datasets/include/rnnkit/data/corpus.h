#pragma once
// Plain-text corpora for language models.
#include <string>
#include <vector>

#include "rnnkit/data/text.h"

namespace rnnkit::data {

/// Word level: one sentence per line, whitespace-tokenized, "<eos>" after each line (blank
/// lines too, as in Mikolov's PTB and pytorch/examples' WikiText). Empty file: DataError.
std::vector<std::string> read_word_corpus(const std::string& path,
                                          const WordTokenizer& tokenizer = {},
                                          Encoding encoding = Encoding::kUtf8);
/// Character level: the raw stream of code points, newlines included.
std::vector<std::string> read_char_corpus(const std::string& path,
                                          Encoding encoding = Encoding::kUtf8);

}  // namespace rnnkit::data

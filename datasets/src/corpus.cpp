#include "rnnkit/data/corpus.h"

namespace rnnkit::data {

std::vector<std::string> read_word_corpus(const std::string& path, const WordTokenizer& tokenizer,
                                          Encoding encoding) {
  LineReader r(path, encoding);
  std::vector<std::string> tokens;
  std::string line;
  bool any = false;
  while (r.next(line)) {
    any = true;
    for (auto& t : tokenizer(line)) tokens.push_back(std::move(t));
    tokens.emplace_back("<eos>");
  }
  if (!any) throw DataError(path, 0, "the file is empty: expected text, one sentence per line");
  return tokens;
}

std::vector<std::string> read_char_corpus(const std::string& path, Encoding encoding) {
  return split_code_points(read_text(path, encoding));
}

}  // namespace rnnkit::data

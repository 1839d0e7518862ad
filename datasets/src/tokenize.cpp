#include "rnnkit/data/tokenize.h"

#include "rnnkit/data/text.h"

namespace rnnkit::data {

namespace {

bool is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}
bool is_alpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }

void split_chunk(const std::string& line, size_t b, size_t e, std::vector<TextToken>& out) {
  static const std::string openers = "([{\"`", closers = ")]}\"!?,;:";
  auto one = [&](size_t at) { return TextToken{line.substr(at, 1), at, at + 1}; };
  while (b < e && openers.find(line[b]) != std::string::npos) out.push_back(one(b++));
  std::vector<TextToken> tail;  // split off from the end, in reverse order
  while (e > b) {
    const char ch = line[e - 1];
    if (closers.find(ch) != std::string::npos) {
      tail.push_back(one(--e));
      continue;
    }
    if (ch == '.') {
      const std::string rest = line.substr(b, e - 1 - b);
      const bool abbreviation =
          rest.find('.') != std::string::npos || (rest.size() == 1 && is_alpha(rest[0]));
      if (!abbreviation || rest.empty()) {
        tail.push_back(one(--e));
        continue;
      }
    }
    if (ch == '\'' && e - b > 2 && (line[e - 2] == 's' || line[e - 2] == 'S')) {  // players'
      tail.push_back(one(--e));
      continue;
    }
    break;
  }
  if (e > b) {
    const std::string lower = to_lower(line.substr(b, e - b));
    size_t cut = e;
    for (const std::string suffix : {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"}) {
      if (lower.size() > suffix.size() &&
          lower.compare(lower.size() - suffix.size(), suffix.size(), suffix) == 0) {
        cut = e - suffix.size();
        break;
      }
    }
    out.push_back({line.substr(b, cut - b), b, cut});
    if (cut < e) out.push_back({line.substr(cut, e - cut), cut, e});
  }
  out.insert(out.end(), tail.rbegin(), tail.rend());
}

}  // namespace

std::vector<TextToken> tokenize_ptb(const std::string& line) {
  std::vector<TextToken> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    size_t j = i;
    while (j < line.size() && !is_space(line[j])) ++j;
    if (j > i) split_chunk(line, i, j, out);
    i = j;
  }
  return out;
}

size_t code_point_offset(const std::string& s, size_t byte) {
  size_t n = 0;
  for (size_t i = 0; i < byte && i < s.size(); ++i)
    n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  return n;
}

}  // namespace rnnkit::data

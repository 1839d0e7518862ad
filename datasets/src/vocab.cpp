#include "rnnkit/data/vocab.h"

#include "stop.h"

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "rnnkit/data/text.h"

namespace rnnkit::data {
namespace {
constexpr const char* kHeader = "#rnnkit-vocab v1";

// Character vocabularies hold "\n" and "\t": one token per line needs escapes.
std::string escape(const std::string& t) {
  std::string out;
  for (char c : t) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else
      out += c;
  }
  return out;
}

bool unescape(const std::string& s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) return false;
    switch (s[i]) {
      case '\\':
        out += '\\';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      default:
        return false;
    }
  }
  return !out.empty();
}
}  // namespace

const std::vector<std::string>& Vocab::specials() {
  static const std::vector<std::string> s{"<pad>", "<unk>", "<bos>", "<eos>"};
  return s;
}

Vocab::Vocab() {
  for (const auto& s : specials()) add(s);
}

void Vocab::add(const std::string& token) {
  if (stoi_.count(token)) return;
  stoi_[token] = static_cast<int64_t>(itos_.size());
  itos_.push_back(token);
}

Vocab Vocab::build(const std::vector<std::string>& tokens, size_t max_size, int64_t min_count) {
  return build(std::vector<std::vector<std::string>>{tokens}, max_size, min_count);
}

Vocab Vocab::build(const std::vector<std::vector<std::string>>& sequences, size_t max_size,
                   int64_t min_count) {
  std::unordered_map<std::string, int64_t> counts;
  size_t seen = 0;
  for (const auto& seq : sequences) {
    for (const auto& t : seq) {
      detail::poll_stop(++seen);
      ++counts[t];
    }
  }
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  Vocab v;
  for (const auto& [tok, n] : sorted) {
    if (max_size && v.itos_.size() >= max_size) break;
    if (n < min_count) break;
    v.add(tok);
  }
  return v;
}

int64_t Vocab::id(const std::string& token) const {
  auto it = stoi_.find(token);
  return it == stoi_.end() ? kUnk : it->second;
}

const std::string& Vocab::token(int64_t id) const {
  if (id < 0 || id >= size()) {
    throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " +
                            std::to_string(size()));
  }
  return itos_[id];
}

std::vector<int64_t> Vocab::encode(const std::vector<std::string>& tokens) const {
  std::vector<int64_t> ids;
  ids.reserve(tokens.size());
  for (const auto& t : tokens) {
    detail::poll_stop(ids.size() + 1);
    ids.push_back(id(t));
  }
  return ids;
}

std::vector<std::string> Vocab::decode(const std::vector<int64_t>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (auto i : ids) out.push_back(token(i));
  return out;
}

std::string Vocab::to_string() const {
  std::string s = std::string(kHeader) + "\n";
  for (const auto& t : itos_) s += escape(t) + "\n";
  return s;
}

void Vocab::save(const std::string& path) const {
  std::ofstream out(path, std::ios::binary);
  out << to_string();
  out.close();
  if (!out)
    throw DataError(path, 0, std::string("cannot write the vocabulary: ") + std::strerror(errno));
}

Vocab Vocab::from_string(const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  if (!std::getline(in, line) || line != kHeader) {
    throw DataError(
        origin, 1,
        std::string("expected the header '") + kHeader + "', got '" + line.substr(0, 40) + "'");
  }
  ++n;
  Vocab v;
  v.itos_.clear();
  v.stoi_.clear();
  while (std::getline(in, line)) {
    ++n;
    std::string token;
    if (!unescape(line, token)) {
      throw DataError(origin, n,
                      "expected one token per line (escapes \\\\ \\n \\r \\t), got '" + line + "'");
    }
    if (v.stoi_.count(token)) throw DataError(origin, n, "token '" + line + "' appears twice");
    v.add(token);
  }
  for (size_t i = 0; i < specials().size(); ++i) {
    if (v.itos_.size() <= i || v.itos_[i] != specials()[i]) {
      throw DataError(origin, i + 2, "expected special token " + specials()[i] + " here");
    }
  }
  return v;
}

Vocab Vocab::load(const std::string& path) { return from_string(read_text(path), path); }

}  // namespace rnnkit::data

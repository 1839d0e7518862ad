#include "rnnkit/data/labelled.h"

#include <unordered_set>

namespace rnnkit::data {
namespace {

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

std::string where(const LineReader& r) { return r.path() + ":" + std::to_string(r.line_number()); }

void require_nonempty(const std::vector<LabelledText>& out, const std::string& path) {
  if (out.empty()) throw DataError(path, 0, "the file is empty: expected labelled lines");
}

}  // namespace

std::vector<LabelledText> read_tsv(const std::string& path, bool label_last, Encoding encoding) {
  LineReader r(path, encoding);
  std::vector<LabelledText> out;
  std::string line;
  while (r.next(line)) {
    if (trim(line).empty()) continue;  // blank separator lines carry nothing to lose
    const auto tab = label_last ? line.rfind('\t') : line.find('\t');
    if (tab == std::string::npos) {
      throw r.error(std::string("expected ") + (label_last ? "text<TAB>label" : "label<TAB>text") +
                    ", found no tab: '" + line.substr(0, 60) + "'");
    }
    std::string label = trim(label_last ? line.substr(tab + 1) : line.substr(0, tab));
    std::string text = trim(label_last ? line.substr(0, tab) : line.substr(tab + 1));
    if (label.empty()) throw r.error("the line has no label");
    if (text.empty()) throw r.error("the line has a label but no text");
    out.push_back({std::move(label), std::move(text), where(r)});
  }
  require_nonempty(out, path);
  return out;
}

std::vector<LabelledText> read_stsa(const std::string& path, Encoding encoding) {
  LineReader r(path, encoding);
  std::vector<LabelledText> out;
  std::string line;
  while (r.next(line)) {
    const std::string t = trim(line);
    if (t.empty()) continue;
    const auto sp = t.find_first_of(" \t");
    if (sp == std::string::npos) {
      throw r.error("expected 'label text', got one field with no text: '" + t.substr(0, 60) + "'");
    }
    out.push_back({t.substr(0, sp), trim(t.substr(sp + 1)), where(r)});
  }
  require_nonempty(out, path);
  return out;
}

namespace {

/// A recursive-descent parser of one SST tree line; every node's label and leaf span.
class TreeParser {
 public:
  TreeParser(const std::string& line, const LineReader& r) : s_(line), r_(r) {}

  struct Node {
    int label;
    size_t begin, end;  // leaves [begin, end)
  };

  void parse() {
    skip_spaces();
    node();
    skip_spaces();
    if (i_ != s_.size()) fail("expected the end of the line after the tree");
  }
  const std::vector<std::string>& leaves() const { return leaves_; }
  const std::vector<Node>& nodes() const { return nodes_; }  // the root last

 private:
  [[noreturn]] void fail(const std::string& what) const {
    const std::string near = i_ < s_.size() ? " at '" + s_.substr(i_, 20) + "'" : " at the end";
    throw r_.error("column " + std::to_string(i_ + 1) + ": " + what + near);
  }
  void skip_spaces() {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
  }
  void expect(char c) {
    if (i_ >= s_.size() || s_[i_] != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  static std::string unescape(const std::string& t) {
    static const std::pair<const char*, const char*> brackets[] = {{"-LRB-", "("}, {"-RRB-", ")"},
                                                                   {"-LSB-", "["}, {"-RSB-", "]"},
                                                                   {"-LCB-", "{"}, {"-RCB-", "}"}};
    for (const auto& [from, to] : brackets) {
      if (t == from) return to;
    }
    std::string out;
    for (size_t k = 0; k < t.size(); ++k) {
      if (t[k] == '\\' && k + 1 < t.size() && (t[k + 1] == '/' || t[k + 1] == '*')) ++k;
      out += t[k];
    }
    return out;
  }
  void node(int depth = 0) {
    // SST's trees are at most a few dozen levels deep; the limit keeps a damaged line (a run of
    // '(') from overflowing the stack of this recursive parser.
    if (depth > kMaxDepth)
      fail("a tree nested deeper than " + std::to_string(kMaxDepth) + " levels");
    expect('(');
    const size_t at = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    if (i_ == at || i_ - at > 1 || s_[at] > '4') {
      i_ = at;
      fail("expected a label from 0 to 4");
    }
    const int label = s_[at] - '0';
    if (i_ >= s_.size() || s_[i_] != ' ') fail("expected a space after the label");
    skip_spaces();
    const size_t begin = leaves_.size();
    if (i_ < s_.size() && s_[i_] == '(') {
      while (i_ < s_.size() && s_[i_] == '(') {
        node(depth + 1);
        skip_spaces();
      }
    } else {
      const size_t t0 = i_;
      while (i_ < s_.size() && s_[i_] != ' ' && s_[i_] != '(' && s_[i_] != ')') ++i_;
      if (i_ == t0) fail("expected a word or a subtree");
      leaves_.push_back(unescape(s_.substr(t0, i_ - t0)));
    }
    expect(')');
    nodes_.push_back({label, begin, leaves_.size()});
  }

  static constexpr int kMaxDepth = 1000;
  const std::string& s_;
  const LineReader& r_;
  size_t i_ = 0;
  std::vector<std::string> leaves_;
  std::vector<Node> nodes_;
};

}  // namespace

std::vector<LabelledText> read_sst_trees(const std::string& path, const SSTOptions& options,
                                         Encoding encoding) {
  LineReader r(path, encoding);
  std::vector<LabelledText> out;
  std::unordered_set<std::string> seen;
  std::string line;
  bool any_tree = false;
  while (r.next(line)) {
    if (trim(line).empty()) continue;
    TreeParser p(line, r);
    p.parse();
    any_tree = true;
    const auto& nodes = p.nodes();
    // The root is the last node completed; with phrases, every node in the line's order.
    for (size_t k = options.phrases ? 0 : nodes.size() - 1; k < nodes.size(); ++k) {
      const auto& n = nodes[k];
      if (options.binary && n.label == 2) continue;
      std::string text;
      for (size_t w = n.begin; w < n.end; ++w) text += (w > n.begin ? " " : "") + p.leaves()[w];
      if (options.phrases && !seen.insert(text).second) continue;
      const std::string label =
          options.binary ? (n.label < 2 ? "0" : "1") : std::to_string(n.label);
      out.push_back({label, std::move(text), where(r)});
    }
  }
  if (!any_tree) throw DataError(path, 0, "the file is empty: expected one SST tree per line");
  if (out.empty()) {
    throw DataError(path, 0, "no tree has a non-neutral label: SST-2 (binary) drops label 2");
  }
  return out;
}

std::vector<LabelledText> read_class_files(
    const std::vector<std::pair<std::string, std::string>>& label_and_path, Encoding encoding) {
  std::vector<LabelledText> out;
  for (const auto& [label, path] : label_and_path) {
    LineReader r(path, encoding);
    std::string line;
    const size_t before = out.size();
    while (r.next(line)) {
      std::string t = trim(line);
      if (!t.empty()) out.push_back({label, std::move(t), where(r)});
    }
    require_nonempty(std::vector<LabelledText>(out.begin() + before, out.end()), path);
  }
  return out;
}

}  // namespace rnnkit::data

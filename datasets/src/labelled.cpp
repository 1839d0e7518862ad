#include "rnnkit/data/labelled.h"

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

#include "rnnkit/data/conll.h"

#include <algorithm>
#include <sstream>

namespace rnnkit::data {
namespace {

std::vector<std::string> split_columns(const std::string& line) {
  std::vector<std::string> cols;
  if (line.find('\t') != std::string::npos) {
    std::string col;
    std::istringstream is(line);
    while (std::getline(is, col, '\t')) cols.push_back(col);
    if (!line.empty() && line.back() == '\t') cols.emplace_back();
  } else {
    std::istringstream is(line);
    std::string col;
    while (is >> col) cols.push_back(col);
  }
  return cols;
}

bool blank(const std::string& line) {
  // Every character the column split treats as a separator: a line of stray CRs is blank too.
  return line.find_first_not_of(" \t\v\f\r\n") == std::string::npos;
}

struct Tag {
  char prefix;  // 'O', 'B', 'I', 'E', 'S'
  std::string type;
};

Tag split_tag(const std::string& tag) {
  if (tag == "O") return {'O', ""};
  if (tag.size() > 2 && tag[1] == '-') return {tag[0], tag.substr(2)};
  return {'?', ""};
}

}  // namespace

std::vector<TaggedSentence> read_conll(const std::string& path, const ConllOptions& options) {
  LineReader reader(path, options.encoding);
  std::vector<TaggedSentence> out;
  TaggedSentence current;
  std::string line;
  size_t lines = 0;
  // Every token line has the file's first token line's column count: a line with fewer or more
  // ("New York I-LOC" in a two-column file) would silently drop a word or take the wrong tag.
  int columns = -1;
  size_t columns_line = 0;
  auto flush = [&] {
    if (!current.tokens.empty()) out.push_back(std::move(current));
    current = TaggedSentence{};
  };
  while (reader.next(line)) {
    ++lines;
    if (blank(line)) {
      flush();
      continue;
    }
    const auto cols = split_columns(line);
    if (cols.empty()) {  // only separators (blank() and the split agree; this guards the index)
      flush();
      continue;
    }
    if (cols[0] == "-DOCSTART-") {
      flush();
      continue;
    }
    const int n = static_cast<int>(cols.size());
    const int tok = options.token_column;
    const int need =
        !options.has_tags
            ? tok + 1
            : std::max({2, tok + 1,
                        options.tag_column < 0 ? -options.tag_column : options.tag_column + 1});
    if (n < need) {
      std::ostringstream os;
      os << "expected at least " << need << " columns (token in column " << tok + 1
         << ", tag in column "
         << (options.tag_column < 0 ? "last" : std::to_string(options.tag_column + 1)) << "), got "
         << n << ": '" << line.substr(0, 80) << "'";
      throw reader.error(os.str());
    }
    if (columns < 0) {
      columns = n;
      columns_line = reader.line_number();
    } else if (n != columns) {
      std::ostringstream os;
      os << "expected " << columns << " columns, as line " << columns_line << " has, got " << n
         << ": '" << line.substr(0, 80) << "' (a token with a space in it?)";
      throw reader.error(os.str());
    }
    if (cols[tok].empty()) throw reader.error("empty token in column " + std::to_string(tok + 1));
    if (current.tokens.empty()) current.line = reader.line_number();
    current.tokens.push_back(cols[tok]);
    current.lines.push_back(line);
    if (!options.has_tags) continue;
    const int tag = options.tag_column < 0 ? n + options.tag_column : options.tag_column;
    if (tag == tok) throw reader.error("the token and the tag column are the same column");
    if (cols[tag].empty()) throw reader.error("empty tag in column " + std::to_string(tag + 1));
    current.tags.push_back(cols[tag]);
  }
  flush();
  if (lines == 0) throw DataError(path, 0, "the file is empty: expected CoNLL columns");
  if (out.empty()) throw DataError(path, 0, "the file holds no sentence, only blank lines");
  return out;
}

TagScheme parse_tag_scheme(const std::string& name) {
  if (name == "iob1") return TagScheme::kIOB1;
  if (name == "iob2" || name == "bio") return TagScheme::kIOB2;
  if (name == "iobes") return TagScheme::kIOBES;
  if (name == "io") return TagScheme::kIO;
  throw std::invalid_argument("unknown tag scheme '" + name +
                              "'; expected iob1, iob2 (bio), iobes or io");
}

std::string to_string(TagScheme s) {
  switch (s) {
    case TagScheme::kIOB1:
      return "iob1";
    case TagScheme::kIOB2:
      return "iob2";
    case TagScheme::kIOBES:
      return "iobes";
    case TagScheme::kIO:
      return "io";
  }
  return "?";
}

int64_t first_tag_outside_scheme(const std::vector<std::string>& tags, TagScheme scheme) {
  for (size_t i = 0; i < tags.size(); ++i) {
    const Tag t = split_tag(tags[i]);
    bool ok;
    switch (scheme) {
      case TagScheme::kIOB1:
      case TagScheme::kIOB2:
        ok = t.prefix == 'O' || t.prefix == 'B' || t.prefix == 'I';
        break;
      case TagScheme::kIOBES:
        ok = t.prefix == 'O' || t.prefix == 'B' || t.prefix == 'I' || t.prefix == 'E' ||
             t.prefix == 'S';
        break;
      case TagScheme::kIO:
        ok = t.prefix == 'O' || t.prefix == 'I';
        break;
    }
    if (!ok) return static_cast<int64_t>(i);
  }
  return -1;
}

std::vector<Span> tags_to_spans(const std::vector<std::string>& tags, TagScheme scheme) {
  std::vector<Span> spans;
  bool open = false;
  Span cur{0, 0, ""};
  auto close = [&](size_t end) {
    if (open) spans.push_back({cur.start, end, cur.type});
    open = false;
  };
  for (size_t i = 0; i < tags.size(); ++i) {
    const Tag t = split_tag(tags[i]);
    if (t.prefix == 'O' || t.prefix == '?') {
      close(i);
      continue;
    }
    bool starts;
    switch (t.prefix) {
      case 'B':
      case 'S':
        starts = true;
        break;
      default:  // I or E continue an open entity of the same type (IO: always, if same type)
        starts = !open || cur.type != t.type;
    }
    (void)scheme;  // conlleval's chunk rules are the same for every scheme
    if (starts) {
      close(i);
      open = true;
      cur = {i, 0, t.type};
    }
    if (t.prefix == 'E' || t.prefix == 'S') close(i + 1);
  }
  close(tags.size());
  return spans;
}

std::vector<std::string> spans_to_tags(const std::vector<Span>& spans, size_t length,
                                       TagScheme scheme) {
  std::vector<std::string> tags(length, "O");
  size_t prev_end = 0;
  std::string prev_type;
  for (const auto& s : spans) {
    for (size_t i = s.start; i < s.end; ++i) {
      char p = 'I';
      const bool first = i == s.start, last = i + 1 == s.end;
      switch (scheme) {
        case TagScheme::kIOB1:
          // B- only where this entity directly follows one of the same type.
          p = first && s.start == prev_end && prev_type == s.type && s.start > 0 ? 'B' : 'I';
          break;
        case TagScheme::kIOB2:
          p = first ? 'B' : 'I';
          break;
        case TagScheme::kIOBES:
          p = first && last ? 'S' : first ? 'B' : last ? 'E' : 'I';
          break;
        case TagScheme::kIO:
          p = 'I';
          break;
      }
      tags[i] = std::string(1, p) + "-" + s.type;
    }
    prev_end = s.end;
    prev_type = s.type;
  }
  return tags;
}

std::vector<std::string> convert_tags(const std::vector<std::string>& tags, TagScheme from,
                                      TagScheme to) {
  return spans_to_tags(tags_to_spans(tags, from), tags.size(), to);
}

bool allowed_transition(const std::string& prev, const std::string& tag, TagScheme scheme) {
  const Tag p = prev.empty() ? Tag{'^', ""} : split_tag(prev);
  const Tag t = tag.empty() ? Tag{'$', ""} : split_tag(tag);
  const bool continues = (p.prefix == 'B' || p.prefix == 'I') && p.type == t.type;
  switch (scheme) {
    case TagScheme::kIO:
      return true;
    case TagScheme::kIOB2:
      return t.prefix != 'I' || continues;
    case TagScheme::kIOB1:
      return t.prefix != 'B' || continues;
    case TagScheme::kIOBES:
      if (t.prefix == 'I' || t.prefix == 'E') return continues;
      return p.prefix != 'B' && p.prefix != 'I';
  }
  return false;
}

SchemeGuess guess_tag_scheme(const std::vector<TaggedSentence>& sentences,
                             const std::string& path) {
  size_t b_line = 0, es_line = 0, i_start_line = 0;
  std::string es_tag, i_start_tag, i_start_prev;
  for (const auto& s : sentences) {
    std::string prev = "O";
    for (size_t k = 0; k < s.tags.size(); ++k) {
      const std::string& tag = s.tags[k];
      const Tag t = split_tag(tag), p = split_tag(prev);
      const size_t line = s.line + k;
      if (t.prefix == 'B' && !b_line) b_line = line;
      if ((t.prefix == 'E' || t.prefix == 'S') && !es_line) es_line = line, es_tag = tag;
      if (t.prefix == 'I' && (p.prefix == 'O' || p.type != t.type) && !i_start_line) {
        i_start_line = line, i_start_tag = tag, i_start_prev = prev;
      }
      prev = tag;
    }
  }
  const std::string at = path.empty() ? "line " : path + ":";
  if (es_line && i_start_line) {
    throw DataError(
        path, es_line,
        "the tags contradict every scheme: '" + es_tag + "' here is IOBES, but at " + at +
            std::to_string(i_start_line) + " '" + i_start_tag + "' follows '" + i_start_prev +
            "', which IOBES forbids (an IOBES entity starts with B- or S-); fix the stray "
            "tag, or declare data.scheme");
  }
  if (es_line)
    return {TagScheme::kIOBES,
            "E- or S- tags occur (first '" + es_tag + "' at " + at + std::to_string(es_line) + ")"};
  if (i_start_line && b_line) {
    return {TagScheme::kIOB1, "entities start with I- (first '" + i_start_tag + "' after '" +
                                  i_start_prev + "' at " + at + std::to_string(i_start_line) +
                                  ") and B- occurs"};
  }
  if (b_line)
    return {TagScheme::kIOB2,
            "every entity starts with B- (first at " + at + std::to_string(b_line) + ")"};
  if (i_start_line) return {TagScheme::kIO, "only I- and O tags occur"};
  return {TagScheme::kIOB2, "no entity tags at all"};
}

TagScheme detect_tag_scheme(const std::vector<TaggedSentence>& sentences) {
  return guess_tag_scheme(sentences, "").scheme;
}

void check_tags(const std::vector<TaggedSentence>& sentences, TagScheme scheme,
                const std::string& path) {
  for (const auto& s : sentences) {
    const int64_t bad = first_tag_outside_scheme(s.tags, scheme);
    if (bad >= 0) {
      throw DataError(path, s.line + static_cast<size_t>(bad),
                      "tag '" + s.tags[bad] + "' is outside the " + to_string(scheme) +
                          " scheme (expected O or " +
                          (scheme == TagScheme::kIOBES ? "B-, I-, E-, S-"
                           : scheme == TagScheme::kIO  ? "I-"
                                                       : "B-, I-") +
                          "TYPE)");
    }
    const auto k = first_invalid_transition(s.tags, scheme);
    if (k < 0) continue;
    const auto i = static_cast<size_t>(k);
    const std::string prev = i == 0 ? "" : s.tags[i - 1];
    const std::string tag = i < s.tags.size() ? s.tags[i] : "";
    std::string why;
    if (tag.empty()) {
      why =
          "the sentence ends inside an entity ('" + prev + "' must be followed by E- of its type)";
    } else {
      why = "'" + tag + "' " +
            (prev.empty() ? std::string("starts the sentence") : "follows '" + prev + "'");
      switch (scheme) {
        case TagScheme::kIOB2:
          why +=
              ", but an IOB2 entity starts with B-; if the file is IOB1, declare data.scheme = "
              "\"iob1\"";
          break;
        default:
          why += ", which " + to_string(scheme) + " forbids";
      }
    }
    throw DataError(path, s.line + std::min(i, s.tags.size() - 1),
                    "invalid " + to_string(scheme) + " tags: " + why +
                        " (data.repair_tags = true repairs such tags, with a warning)");
  }
}

int64_t first_invalid_transition(const std::vector<std::string>& tags, TagScheme scheme) {
  // IOB1 files are read as conlleval reads them: B-X after O or another type is unambiguous (it
  // starts an entity), and real IOB1 data has it (CoNLL-2003's eng.train, line 152428).
  if (scheme == TagScheme::kIOB1 || scheme == TagScheme::kIO) return -1;
  for (size_t i = 0; i <= tags.size(); ++i) {
    const std::string prev = i == 0 ? "" : tags[i - 1];
    const std::string tag = i < tags.size() ? tags[i] : "";
    if (i == tags.size() && tags.empty()) break;
    if (!allowed_transition(prev, tag, scheme)) return static_cast<int64_t>(i);
  }
  return -1;
}

int64_t repair_tags(std::vector<TaggedSentence>& sentences, TagScheme scheme) {
  int64_t changed = 0;
  for (auto& s : sentences) {
    if (first_invalid_transition(s.tags, scheme) < 0) continue;
    auto fixed = convert_tags(s.tags, scheme, scheme);
    for (size_t i = 0; i < fixed.size(); ++i) changed += fixed[i] != s.tags[i];
    s.tags = std::move(fixed);
  }
  return changed;
}

}  // namespace rnnkit::data

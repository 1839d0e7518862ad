#include "rnnkit/data/text.h"

#include "stop.h"

#include <sys/stat.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace rnnkit::data {

DataError::DataError(std::string file, size_t line, const std::string& message)
    : std::runtime_error(file + (line ? ":" + std::to_string(line) : std::string()) + ": " +
                         message),
      file_(std::move(file)),
      line_(line) {}

Encoding parse_encoding(const std::string& name) {
  if (name == "utf8" || name == "utf-8") return Encoding::kUtf8;
  if (name == "latin1" || name == "iso-8859-1") return Encoding::kLatin1;
  if (name == "cp1252" || name == "windows-1252") return Encoding::kCp1252;
  throw std::invalid_argument("unknown encoding '" + name + "'; expected utf8, latin1 or cp1252");
}

namespace {

// Windows-1252's 0x80-0x9F block; 0 marks the five bytes it leaves undefined.
constexpr std::array<char32_t, 32> kCp1252High{
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// Length of the UTF-8 sequence starting at s[i], or 0 if it is invalid (overlong forms,
/// surrogates and code points above U+10FFFF are invalid).
size_t utf8_sequence_length(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  char32_t cp;
  if ((c & 0xE0) == 0xC0)
    n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0)
    n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0)
    n = 4, cp = c & 0x07;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

int64_t find_invalid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return static_cast<int64_t>(i);
    i += n;
  }
  return -1;
}

std::vector<std::string> split_code_points(const std::string& s) {
  std::vector<std::string> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    detail::poll_stop(out.size());
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) n = 1;  // callers validate first; never loop forever on bad input
    out.emplace_back(s, i, n);
    i += n;
  }
  return out;
}

std::string to_utf8(const std::string& bytes, Encoding from) {
  if (from == Encoding::kUtf8) return bytes;
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 8);
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    char32_t cp = c;
    if (from == Encoding::kCp1252 && c >= 0x80 && c < 0xA0 && kCp1252High[c - 0x80] != 0) {
      cp = kCp1252High[c - 0x80];
    }
    append_utf8(out, cp);
  }
  return out;
}

namespace {
std::atomic<size_t> g_max_line_bytes{kDefaultMaxLineBytes};
}  // namespace

std::atomic<void (*)()> g_stop_check{nullptr};
void set_stop_check(void (*check)()) { g_stop_check = check; }

void detail::poll_stop(size_t i) {
  if ((i & ((size_t{1} << 20) - 1)) != 0) return;
  if (auto* check = g_stop_check.load()) check();
}

void set_max_line_bytes(size_t bytes) {
  g_max_line_bytes = bytes > 0 ? bytes : kDefaultMaxLineBytes;
}
size_t max_line_bytes() { return g_max_line_bytes.load(); }

LineReader::LineReader(const std::string& path, Encoding encoding, bool streaming)
    : path_(path == "-" ? "<stdin>" : path), encoding_(encoding) {
  if (path != "-") {
    // What is not a regular file is refused before it is opened: a device (/dev/zero) never
    // ends, and opening a FIFO with no writer blocks forever.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) throw DataError(path, 0, "is a directory; expected a text file");
      if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode)) {
        throw DataError(path, 0,
                        std::string("is a ") + (S_ISSOCK(st.st_mode) ? "socket" : "device") +
                            ", not a text file; give a regular file (or pipe text to stdin)");
      }
      if (S_ISFIFO(st.st_mode) && !streaming) {
        throw DataError(path, 0,
                        "is a named pipe; data to train or evaluate on must be a regular file "
                        "(predict and score read pipes: give --file - or pipe to stdin)");
      }
    }
  }
  // "-" is standard input; reading it line by line keeps a pipe streaming.
  in_.open(path == "-" ? "/dev/stdin" : path, std::ios::binary);
  if (!in_) throw DataError(path, 0, std::string("cannot open file: ") + std::strerror(errno));
}

bool LineReader::next(std::string& line) {
  // std::getline would take a line of any length into memory first: read up to the limit.
  const size_t most = max_line_bytes();
  line.clear();
  std::streambuf* buf = in_.rdbuf();
  bool any = false;
  for (;;) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      if (any) newline_ = false;  // an unterminated last line; at the end, the last line's say
      break;
    }
    any = true;
    if (c == '\n') {
      newline_ = true;
      break;
    }
    if (line.size() >= most) {
      ++line_number_;
      throw error("the line is longer than the limit of " + std::to_string(most) +
                  " bytes (data.max_line_bytes in a config, --max-line-bytes on the command "
                  "line); is this one huge line, or not a text file?");
    }
    line.push_back(static_cast<char>(c));
  }
  if (!any) {
    if (in_.bad()) throw error(std::string("read error: ") + std::strerror(errno));
    return false;
  }
  ++line_number_;
  if (line_number_ % 4096 == 0) {
    if (auto* check = g_stop_check.load()) check();
  }
  check_line(line);
  return true;
}

void LineReader::check_line(std::string& line) const {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line_number_ == 1) {
    // A byte-order mark is no part of the text: a UTF-8 one is dropped, a UTF-16 one named.
    if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    if (line.rfind("\xFF\xFE", 0) == 0 || line.rfind("\xFE\xFF", 0) == 0) {
      throw error(
          "the file is UTF-16 (it starts with a UTF-16 byte-order mark); rnnkit reads UTF-8, "
          "Latin-1 or Windows-1252: convert it first (iconv -f UTF-16 -t UTF-8)");
    }
  }
  if (const auto nul = line.find('\0'); nul != std::string::npos) {
    // UTF-16 without a mark: ASCII text with every other byte NUL.
    const auto nuls = static_cast<size_t>(std::count(line.begin(), line.end(), '\0'));
    if (line.size() >= 4 && nuls * 3 >= line.size()) {
      throw error(
          "NUL bytes at every other byte: the file looks like UTF-16; rnnkit reads UTF-8, "
          "Latin-1 or Windows-1252: convert it first (iconv -f UTF-16 -t UTF-8)");
    }
    throw error("NUL byte at byte " + std::to_string(nul + 1) +
                " of the line; a text file holds none (is this a binary file?)");
  }
  if (encoding_ == Encoding::kUtf8) {
    const int64_t bad = find_invalid_utf8(line);
    if (bad >= 0) {
      std::ostringstream os;
      os << "invalid UTF-8 at byte " << bad + 1 << " of the line (0x" << std::hex
         << static_cast<int>(static_cast<unsigned char>(line[bad]))
         << "); if the file is Latin-1 or Windows-1252, set encoding = \"latin1\" or "
            "\"cp1252\"";
      throw error(os.str());
    }
  } else {
    line = to_utf8(line, encoding_);
  }
  line = nfc(line);
}

std::string read_text(const std::string& path, Encoding encoding, bool allow_empty) {
  LineReader reader(path, encoding);
  std::string text, line;
  bool first = true;
  while (reader.next(line)) {
    if (!first) text += '\n';
    text += line;
    first = false;
  }
  if (text.empty() && !allow_empty) throw DataError(reader.path(), 0, "the file is empty");
  // getline drops the final newline; keep it, as it is part of the text.
  if (!first && reader.ended_with_newline()) text += '\n';
  return text;
}

namespace {

bool ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

/// Applies `f` to each code point of valid UTF-8 `s`.
template <class F>
std::string map_code_points(const std::string& s, F f) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {  // not valid UTF-8 (callers validate): keep the byte as it is
      out += static_cast<char>(*p);
      ++p, --left;
      continue;
    }
    utf8proc_uint8_t buf[4];
    const utf8proc_ssize_t m = utf8proc_encode_char(f(cp), buf);
    out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(m));
    p += n, left -= n;
  }
  return out;
}

}  // namespace

std::string to_lower(const std::string& s) {
  if (ascii(s)) {
    std::string out = s;
    for (auto& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    }
    return out;
  }
  return map_code_points(s, [](utf8proc_int32_t cp) { return utf8proc_tolower(cp); });
}

std::string normalize_digits(const std::string& s) {
  return map_code_points(s, [](utf8proc_int32_t cp) {
    return utf8proc_category(cp) == UTF8PROC_CATEGORY_ND ? utf8proc_int32_t{'0'} : cp;
  });
}

std::string nfc(const std::string& s) {
  if (ascii(s)) return s;  // ASCII is NFC already; most lines of most corpora are
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  if (!out) return s;  // invalid UTF-8: the readers have refused it before
  std::string r(reinterpret_cast<const char*>(out));
  std::free(out);
  return r;
}

bool is_blank(const std::string& s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t c = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0) return false;  // not UTF-8: not blank, the caller's checks say what it is
    const auto cat = utf8proc_category(c);
    if (cat != UTF8PROC_CATEGORY_ZS && cat != UTF8PROC_CATEGORY_ZL && cat != UTF8PROC_CATEGORY_ZP &&
        cat != UTF8PROC_CATEGORY_CC) {
      return false;
    }
    p += n;
    left -= n;
  }
  return true;
}

CaseCounts case_counts(const std::string& s) {
  CaseCounts c;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) n = 1, cp = -1;
    const auto cat = cp < 0 ? UTF8PROC_CATEGORY_CN : utf8proc_category(cp);
    const bool upper = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT;
    if (c.total == 0) c.first_upper = upper;
    c.upper += upper;
    c.lower += cat == UTF8PROC_CATEGORY_LL;
    c.digits += cat == UTF8PROC_CATEGORY_ND;
    ++c.total;
    p += n, left -= n;
  }
  return c;
}

std::string WordTokenizer::normalize(const std::string& word) const {
  std::string w = lowercase ? to_lower(word) : word;
  return normalize_digits ? data::normalize_digits(w) : w;
}

std::vector<std::string> WordTokenizer::operator()(const std::string& line) const {
  std::vector<std::string> out;
  std::istringstream is(line);
  std::string w;
  while (is >> w) out.push_back(normalize(w));
  return out;
}

}  // namespace rnnkit::data

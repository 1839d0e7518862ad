#pragma once
// Reading text files line by line, with encodings, and tokenizing them.
//
// Every error names the file and the line (DataError). Nothing is skipped silently.
#include <cstdint>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace rnnkit::data {

/// A problem with an input file: what() reads "FILE:LINE: what was wrong".
class DataError : public std::runtime_error {
 public:
  DataError(std::string file, size_t line, const std::string& message);
  const std::string& file() const { return file_; }
  size_t line() const { return line_; }  ///< 1-based; 0 when it concerns the whole file

 private:
  std::string file_;
  size_t line_;
};

/// Input encodings. Everything is UTF-8 inside; Latin-1 and Windows-1252 are decoded on read.
enum class Encoding { kUtf8, kLatin1, kCp1252 };
/// "utf8"/"utf-8", "latin1"/"iso-8859-1", "cp1252"/"windows-1252".
Encoding parse_encoding(const std::string& name);

/// The longest line any reader takes, in bytes before decoding (1 MiB unless set): a longer line
/// is a DataError naming the file, the line and the limit, read no further than the limit, so
/// that no input grows memory without bound. Set once at start-up, from a config's
/// data.max_line_bytes or a command's --max-line-bytes; it holds for the whole process.
constexpr size_t kDefaultMaxLineBytes = size_t{1} << 20;
void set_max_line_bytes(size_t bytes);
size_t max_line_bytes();

/// A function every reader calls every few thousand lines (and that may throw to stop it): the
/// apps set one while a stop signal is awaited, so that SIGTERM during a long load is seen
/// within milliseconds, not after the whole file. nullptr: none.
void set_stop_check(void (*check)());

/// Reads a text file line by line: strips the line ending (LF or CRLF) and a UTF-8 byte-order
/// mark at the start, decodes the encoding, checks UTF-8 and normalises to NFC (every line the
/// readers return is NFC). Throws DataError for a missing file, a directory, a device or socket
/// (and a named pipe unless `streaming`), a line over max_line_bytes(), UTF-16, and a NUL byte or
/// an invalid byte sequence at its line and byte.
class LineReader {
 public:
  /// `path` "-" reads standard input (named "<stdin>" in messages). `streaming`: the input may
  /// be a named pipe (predict's and score's input); data that is trained on or evaluated must
  /// be a regular file.
  explicit LineReader(const std::string& path, Encoding encoding = Encoding::kUtf8,
                      bool streaming = false);
  /// The next line (without its ending), or false at the end of the file.
  bool next(std::string& line);
  /// What next() does to each line, for lines from elsewhere (stdin): strips a CR, rejects NUL
  /// bytes and invalid UTF-8 (naming this reader's path and line), decodes the encoding.
  void check_line(std::string& line) const;
  size_t line_number() const { return line_number_; }
  /// Whether the line last returned ended with a newline (only the file's last may not).
  bool ended_with_newline() const { return newline_; }
  const std::string& path() const { return path_; }
  /// A DataError at the current line.
  DataError error(const std::string& message) const { return {path_, line_number_, message}; }

 private:
  std::string path_;
  Encoding encoding_;
  std::ifstream in_;
  size_t line_number_ = 0;
  bool newline_ = true;
};

/// Reads a whole file through LineReader, joining lines with '\n' (a final newline is kept if
/// the file has one). Throws on an empty file when `allow_empty` is false.
std::string read_text(const std::string& path, Encoding encoding = Encoding::kUtf8,
                      bool allow_empty = false);

/// The byte offset of the first invalid UTF-8 sequence, or -1 if `s` is valid UTF-8.
int64_t find_invalid_utf8(const std::string& s);
/// Splits UTF-8 into code points, one string each. `s` must be valid UTF-8.
std::vector<std::string> split_code_points(const std::string& s);
/// Decodes Latin-1 or Windows-1252 bytes to UTF-8.
std::string to_utf8(const std::string& bytes, Encoding from);

/// Unicode, through utf8proc. Lowercasing maps each code point to its simple lowercase (Greek,
/// Cyrillic, "Ł" as well as ASCII); digit normalisation turns every decimal digit (category Nd,
/// "٣" and "３" too) into '0'; NFC composes "e" + U+0301 into "é", so that a word has one
/// spelling. `s` must be valid UTF-8.
std::string to_lower(const std::string& s);
std::string normalize_digits(const std::string& s);
std::string nfc(const std::string& s);
/// Whether `s` holds nothing but white space: ASCII's and Unicode's separators (Zs, Zl, Zp:
/// U+00A0, U+3000, ...) and control characters. `s` must be valid UTF-8.
bool is_blank(const std::string& s);
/// How many code points of `s` are upper case (Lu, Lt), lower case (Ll), decimal digits (Nd),
/// and in all; and whether the first is upper case.
struct CaseCounts {
  int64_t upper = 0, lower = 0, digits = 0, total = 0;
  bool first_upper = false;
};
CaseCounts case_counts(const std::string& s);

/// Whitespace tokenizer with optional lowercasing and digit normalisation (every decimal digit
/// becomes '0', as in many NER systems), both Unicode-aware (see to_lower).
struct WordTokenizer {
  bool lowercase = false;
  bool normalize_digits = false;
  std::vector<std::string> operator()(const std::string& line) const;
  std::string normalize(const std::string& word) const;
};

/// One token per Unicode code point.
struct CharTokenizer {
  std::vector<std::string> operator()(const std::string& line) const {
    return split_code_points(line);
  }
};

}  // namespace rnnkit::data

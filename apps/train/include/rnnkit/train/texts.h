#pragma once
// Texts handed to a loaded model by a program rather than read from a file: the server's
// requests and rnnkit.load(...) in Python. They are checked as the line readers check a line
// (a size limit, no NUL) and normalised as they normalise it (NFC), so every way in reads a text
// as predict does, and refuses it with the same words.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace rnnkit::train {

/// The limits, and the names the caller gives them (the server's flags, Python's arguments).
struct TextLimits {
  int64_t max_texts = 256;         ///< texts in one call
  int64_t max_text_bytes = 65536;  ///< bytes of one text
  std::string max_texts_name = "--max-texts", max_text_bytes_name = "--max-text-bytes";
};

/// A refused text: over a limit (`too_large`: a server's 413) or malformed (a 400).
struct TextError : std::invalid_argument {
  TextError(bool over_limit, const std::string& message)
      : std::invalid_argument(message), too_large(over_limit) {}
  bool too_large;
};

/// `text` (called `field` in the message) within max_text_bytes, without NUL, in NFC.
std::string checked_text(const std::string& text, const std::string& field, const TextLimits& l);
/// Between 1 and max_texts entries in the list `field`.
void check_text_count(size_t count, const std::string& field, const TextLimits& l);
/// A text with nothing but white space (U+3000 and NBSP too) has nothing to `task` (classify).
void refuse_blank(const std::string& text, const std::string& field, const std::string& task);

}  // namespace rnnkit::train

#include <rnnkit/train/texts.h>

#include <fmt/core.h>
#include <rnnkit/data/text.h>

namespace rnnkit::train {

std::string checked_text(const std::string& text, const std::string& field, const TextLimits& l) {
  if (static_cast<int64_t>(text.size()) > l.max_text_bytes) {
    throw TextError(true, fmt::format("field '{}': {} bytes, more than the limit of {} ({})", field,
                                      text.size(), l.max_text_bytes, l.max_text_bytes_name));
  }
  if (text.find('\0') != std::string::npos) {
    throw TextError(false, "field '" + field + "': a NUL character; a text holds none");
  }
  // The limit holds for what the model reads: NFC can grow a text (U+0958 is 3 bytes, its
  // decomposition 6), and a text just under the limit must not pass at three times its size.
  std::string normalized = data::nfc(text);
  if (static_cast<int64_t>(normalized.size()) > l.max_text_bytes) {
    throw TextError(true, fmt::format("field '{}': {} bytes after NFC normalisation ({} as sent), "
                                      "more than the limit of {} ({})",
                                      field, normalized.size(), text.size(), l.max_text_bytes,
                                      l.max_text_bytes_name));
  }
  return normalized;
}

void check_text_count(size_t count, const std::string& field, const TextLimits& l) {
  if (count == 0) throw TextError(false, "field '" + field + "': expected at least one entry");
  if (static_cast<int64_t>(count) > l.max_texts) {
    throw TextError(true, fmt::format("field '{}': {} entries, more than the limit of {} ({})",
                                      field, count, l.max_texts, l.max_texts_name));
  }
}

void refuse_blank(const std::string& text, const std::string& field, const std::string& task) {
  if (data::is_blank(text)) {
    throw TextError(false, "field '" + field +
                               "': an empty text (nothing but white space); there is nothing to " +
                               task);
  }
}

}  // namespace rnnkit::train

// The line reader in each encoding, the UTF-8 helpers and the tokenizers.
#include <rnnkit/data/corpus.h>
#include <rnnkit/data/text.h>

#include "fuzz_util.h"

using namespace rnnkit::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const rnnkit_fuzz::MemFile file(data, size);
  for (const auto enc : {Encoding::kUtf8, Encoding::kLatin1, Encoding::kCp1252}) {
    rnnkit_fuzz::expect_clean([&] {
      LineReader r(file.path(), enc);
      std::string line;
      while (r.next(line)) {
        // What the reader returns is valid UTF-8 without NUL bytes, whatever came in.
        if (find_invalid_utf8(line) >= 0 || line.find('\0') != std::string::npos) std::abort();
        std::string joined;
        for (const auto& cp : split_code_points(line)) joined += cp;
        if (joined != line) std::abort();
        for (const bool lower : {false, true}) {
          for (const auto& w : WordTokenizer{lower, true}(line)) {
            if (w.empty() || find_invalid_utf8(w) >= 0) std::abort();
          }
        }
      }
    });
    rnnkit_fuzz::expect_clean([&] { read_char_corpus(file.path(), enc); });
    rnnkit_fuzz::expect_clean([&] {
      read_word_corpus(file.path(), WordTokenizer{true, false}, enc);
    });
  }
  // The helpers on raw bytes, valid or not.
  const std::string raw(reinterpret_cast<const char*>(data), size);
  find_invalid_utf8(raw);
  split_code_points(raw);
  to_utf8(raw, Encoding::kCp1252);
  return 0;
}

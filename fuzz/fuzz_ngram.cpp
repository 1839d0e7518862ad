// The n-gram model loader on arbitrary bytes: the header's length and CRC-32 (checked before
// anything is parsed), then the parser behind them, whose counts are bounded by the file's size.
// Mutations of a seed model are refused by the checksum unless they hit the header; the seed's
// own body (fuzz.sh writes one with a valid header) drives the parser.
#include "fuzz_util.h"
#include "lm/ngram.h"

using namespace rnnkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  rnnkit_fuzz::expect_clean([&] { lm::NGramModel::from_bytes(bytes, "fuzz.ngram"); });
  // The body behind a header that is right for it: the parser itself.
  rnnkit_fuzz::expect_clean(
      [&] { lm::NGramModel::from_bytes(lm::NGramModel::with_header(bytes), "fuzz.ngram"); });
  return 0;
}

// The vocabulary loader (vocab text, as stored in checkpoints and by Vocab::save).
#include <rnnkit/data/vocab.h>

#include "fuzz_util.h"

using namespace rnnkit::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  rnnkit_fuzz::expect_clean([&] {
    const Vocab v = Vocab::from_string(text, "fuzz");
    // What loads survives a round trip.
    if (!(Vocab::from_string(v.to_string(), "again") == v)) std::abort();
    for (int64_t i = 0; i < v.size(); ++i) {
      if (v.id(v.token(i)) != i) std::abort();
    }
  });
  return 0;
}

// The CoNLL reader, scheme detection, checks, repair and conversion in every scheme.
#include <rnnkit/data/conll.h>

#include "fuzz_util.h"

using namespace rnnkit::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const rnnkit_fuzz::MemFile file(data, size);
  for (const int tag_column : {-1, 1, 3}) {
    rnnkit_fuzz::expect_clean([&] {
      ConllOptions o;
      o.tag_column = tag_column;
      auto sentences = read_conll(file.path(), o);
      rnnkit_fuzz::expect_clean([&] { guess_tag_scheme(sentences, file.path()); });
      for (const auto scheme :
           {TagScheme::kIOB1, TagScheme::kIOB2, TagScheme::kIOBES, TagScheme::kIO}) {
        rnnkit_fuzz::expect_clean([&] { check_tags(sentences, scheme, file.path()); });
        auto repaired = sentences;
        repair_tags(repaired, scheme);
        for (const auto& s : repaired) {
          // Repaired tags either pass the check or hold tags outside the scheme (an error then).
          if (first_tag_outside_scheme(s.tags, scheme) < 0 &&
              first_invalid_transition(s.tags, scheme) >= 0) {
            std::abort();
          }
          for (const auto to : {TagScheme::kIOB1, TagScheme::kIOBES}) {
            if (convert_tags(s.tags, scheme, to).size() != s.tags.size()) std::abort();
          }
        }
      }
    });
  }
  rnnkit_fuzz::expect_clean([&] {
    ConllOptions o;
    o.has_tags = false;
    read_conll(file.path(), o);
  });
  return 0;
}

// The labelled-text readers: tab-separated (label first or last), SST's stsa, SST's trees, one
// file per class.
#include <rnnkit/data/labelled.h>

#include "fuzz_util.h"

using namespace rnnkit::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const rnnkit_fuzz::MemFile file(data, size);
  auto check = [](const std::vector<LabelledText>& v) {
    for (const auto& e : v) {
      if (e.label.empty() || e.origin.empty()) std::abort();
    }
  };
  rnnkit_fuzz::expect_clean([&] { check(read_tsv(file.path(), false)); });
  rnnkit_fuzz::expect_clean([&] { check(read_tsv(file.path(), true, Encoding::kLatin1)); });
  rnnkit_fuzz::expect_clean([&] { check(read_stsa(file.path())); });
  rnnkit_fuzz::expect_clean([&] { check(read_sst_trees(file.path())); });
  rnnkit_fuzz::expect_clean([&] { check(read_sst_trees(file.path(), SSTOptions{true, false})); });
  rnnkit_fuzz::expect_clean([&] {
    check(read_class_files({{"pos", file.path()}, {"neg", file.path()}}));
  });
  return 0;
}

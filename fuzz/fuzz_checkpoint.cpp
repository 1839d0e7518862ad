// The checkpoint loader on arbitrary bytes. An input starting with a 0 byte is a payload: it is
// wrapped in a valid container (header and CRC), so that the fuzzer reaches the inner archive
// and the language model's loader behind the checksum; any other input is a whole file.
#include <torch/torch.h>

#include "common/checkpoint.h"
#include "fuzz_util.h"
#include "lm/lm.h"

using namespace rnnkit;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (!bytes.empty() && bytes[0] == '\0') bytes = app::checkpoint_bytes("lm", "", bytes.substr(1));
  rnnkit_fuzz::expect_clean([&] { app::open_checkpoint_bytes(bytes, "fuzz.pt", "lm", ""); });
  const rnnkit_fuzz::MemFile file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  rnnkit_fuzz::expect_clean([&] { lm::load_model(file.path(), torch::kCPU); });
  return 0;
}

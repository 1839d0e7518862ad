// The checkpoint loader on arbitrary bytes: the header, the length and the checksum (checked
// before LibTorch parses anything), and the language model's loader behind them. Inputs are whole
// files; mutations of a seed checkpoint are refused by the checksum unless they hit the header.
#include <torch/torch.h>

#include <rnnkit/train/checkpoint.h>
#include "fuzz_util.h"
#include "lm/lm.h"

using namespace rnnkit;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  rnnkit_fuzz::expect_clean([&] { train::open_checkpoint_bytes(bytes, "fuzz.pt", "lm", ""); });
  const rnnkit_fuzz::MemFile file(data, size);
  rnnkit_fuzz::expect_clean([&] { lm::load_model(file.path(), torch::kCPU); });
  return 0;
}

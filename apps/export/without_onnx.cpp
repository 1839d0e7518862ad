// The apps' export commands in a build without ONNX (libonnx-dev missing when CMake ran): they
// say so instead of disappearing from --help.
#include <iostream>

namespace {
int unavailable(const char* program) {
  std::cerr << program
            << " export: this build has no ONNX export; install libonnx-dev (scripts/setup.sh) "
               "and build again\n";
  return 1;
}
}  // namespace

namespace rnnkit::lm {
int export_main(int, char**) { return unavailable("rnnkit-lm"); }
}  // namespace rnnkit::lm
namespace rnnkit::ner {
int export_main(int, char**) { return unavailable("rnnkit-ner"); }
}  // namespace rnnkit::ner
namespace rnnkit::sentiment {
int export_main(int, char**) { return unavailable("rnnkit-sentiment"); }
}  // namespace rnnkit::sentiment

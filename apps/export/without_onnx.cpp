// An app's export command in a build without ONNX (libonnx-dev missing when CMake ran): it says
// so instead of disappearing from --help. Each app compiles this file with RNNKIT_EXPORT_APP
// defined as its namespace (apps/CMakeLists.txt), so the export layer names no app.
#include <iostream>

#ifndef RNNKIT_EXPORT_APP
#error "RNNKIT_EXPORT_APP must name the app (lm, ner, sentiment)"
#endif
#define RNNKIT_STRINGIFY2(x) #x
#define RNNKIT_STRINGIFY(x) RNNKIT_STRINGIFY2(x)

namespace rnnkit::RNNKIT_EXPORT_APP {
int export_main(int, char**) {
  std::cerr << "rnnkit-" RNNKIT_STRINGIFY(RNNKIT_EXPORT_APP)
               " export: this build has no ONNX export; install libonnx-dev (scripts/setup.sh) "
               "and build again\n";
  return 1;
}
}  // namespace rnnkit::RNNKIT_EXPORT_APP

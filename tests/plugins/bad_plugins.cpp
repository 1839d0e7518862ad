// Plugins that rnnkit must refuse, one per build (tests/CMakeLists.txt defines which):
//   RNNKIT_BAD_ABI        claims another rnnkit version
//   RNNKIT_THROWS         its body throws
//   RNNKIT_BUILTIN_NAME   registers "lstm"
//   RNNKIT_EMPTY          registers nothing
//   RNNKIT_NOT_A_PLUGIN   has no entry points at all
#include <stdexcept>

#include <rnnkit/plugin.h>
#include <rnnkit/registry.h>

#include "mgu_cell.h"

#if defined(RNNKIT_BAD_ABI)
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_abi_tag() {
  return "rnnkit 0.0.1; torch 1.13; c++abi 1017; cxx11-abi 1";
}
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_name() { return "old"; }
extern "C" __attribute__((visibility("default"))) void rnnkit_plugin_register() {
  mgu::register_mgu();
}
#elif defined(RNNKIT_THROWS)
RNNKIT_PLUGIN("throws") { throw std::runtime_error("boom in the plugin body"); }
#elif defined(RNNKIT_BUILTIN_NAME)
RNNKIT_PLUGIN("builtin") {
  rnnkit::register_cell("lstm", [](const rnnkit::CellSpec& s) {
    return std::make_shared<mgu::MGUCellImpl>(mgu::MGUCellOptions(s.input_size(), s.hidden_size()));
  });
}
#elif defined(RNNKIT_EMPTY)
RNNKIT_PLUGIN("empty") {}
#elif defined(RNNKIT_NOT_A_PLUGIN)
extern "C" int not_a_plugin() { return 1; }
#endif

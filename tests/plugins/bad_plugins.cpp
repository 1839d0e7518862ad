// Plugins that rnnkit must refuse, one per build (tests/CMakeLists.txt defines which):
//   RNNKIT_BAD_ABI        claims another rnnkit version
//   RNNKIT_THROWS         its body throws
//   RNNKIT_BUILTIN_NAME   registers "lstm"
//   RNNKIT_EMPTY          registers nothing
//   RNNKIT_NOT_A_PLUGIN   has no entry points at all
// Only the plugin header (and the registry for the one that registers): these build fast.
#include <stdexcept>

#include <rnnkit/plugin.h>
#if defined(RNNKIT_BUILTIN_NAME)
#include <rnnkit/registry.h>
#endif

#if defined(RNNKIT_BAD_ABI)
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_abi_tag() {
  return "rnnkit 0.0.1; torch 1.13; c++abi 1017; cxx11-abi 1";
}
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_name() { return "old"; }
extern "C" __attribute__((visibility("default"))) void rnnkit_plugin_register() {
  throw std::logic_error("the body of a plugin of another version must never run");
}
#elif defined(RNNKIT_THROWS)
RNNKIT_PLUGIN("throws") { throw std::runtime_error("boom in the plugin body"); }
#elif defined(RNNKIT_BUILTIN_NAME)
RNNKIT_PLUGIN("builtin") {
  rnnkit::register_cell("lstm",
                        [](const rnnkit::CellSpec& s) { return rnnkit::make_cell("gru", s); });
}
#elif defined(RNNKIT_EMPTY)
RNNKIT_PLUGIN("empty") {}
#elif defined(RNNKIT_NOT_A_PLUGIN)
extern "C" int not_a_plugin() { return 1; }
#endif

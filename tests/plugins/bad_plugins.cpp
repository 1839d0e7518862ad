// Plugins that rnnkit must refuse, one per build (tests/CMakeLists.txt defines which):
//   RNNKIT_BAD_ABI        claims another rnnkit version
//   RNNKIT_THROWS         its body throws
//   RNNKIT_BUILTIN_NAME   registers "lstm"
//   RNNKIT_EMPTY          registers nothing
//   RNNKIT_NOT_A_PLUGIN   has no entry points at all
//   RNNKIT_THROWS_INT     its body throws an int (not a std::exception)
//   RNNKIT_NULL_NAME      its name is a null pointer
//   RNNKIT_NULL_ABI       its ABI tag is a null pointer
//   RNNKIT_HUGE_ABI       its ABI tag is 10 MB long
//   RNNKIT_MARKER         a good plugin (cell "marker_gru") whose static constructor creates the
//                         file $RNNKIT_TEST_MARKER: proof of whether its code ran
//   RNNKIT_DUPLICATE      registers "marker_gru" too
//   RNNKIT_ABORTS         its body calls abort(): only a child process can survive it
//   RNNKIT_EXITS          its body calls exit(0), which once made `train` look successful
// Only the plugin header (and the registry for the ones that register): these build fast.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <rnnkit/plugin.h>
#if defined(RNNKIT_BUILTIN_NAME) || defined(RNNKIT_MARKER) || defined(RNNKIT_DUPLICATE)
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
#elif defined(RNNKIT_THROWS_INT)
RNNKIT_PLUGIN("throws_int") { throw 42; }
#elif defined(RNNKIT_NULL_NAME)
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_abi_tag() {
  return RNNKIT_ABI_TAG;
}
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_name() {
  return nullptr;
}
extern "C" __attribute__((visibility("default"))) void rnnkit_plugin_register() {}
#elif defined(RNNKIT_NULL_ABI)
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_abi_tag() {
  return nullptr;
}
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_name() { return "x"; }
extern "C" __attribute__((visibility("default"))) void rnnkit_plugin_register() {}
#elif defined(RNNKIT_HUGE_ABI)
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_abi_tag() {
  static const std::string tag(10 << 20, 'x');
  return tag.c_str();
}
extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_name() { return "x"; }
extern "C" __attribute__((visibility("default"))) void rnnkit_plugin_register() {}
#elif defined(RNNKIT_MARKER)
namespace {
struct Marker {
  Marker() {
    if (const char* path = std::getenv("RNNKIT_TEST_MARKER")) {
      if (FILE* f = std::fopen(path, "a")) {
        std::fputs("the marker plugin's static constructor ran\n", f);
        std::fclose(f);
      }
    }
  }
} marker;
}  // namespace
RNNKIT_PLUGIN("marker") { rnnkit::register_cell_alias("marker_gru", "gru", rnnkit::CellOptions{}); }
#elif defined(RNNKIT_ABORTS)
RNNKIT_PLUGIN("aborts") { std::abort(); }
#elif defined(RNNKIT_EXITS)
RNNKIT_PLUGIN("exits") { std::exit(0); }
#elif defined(RNNKIT_DUPLICATE)
RNNKIT_PLUGIN("duplicate") {
  rnnkit::register_cell_alias("marker_gru", "gru", rnnkit::CellOptions{});
}
#endif

#pragma once
// Cell plugins: shared libraries that register cells when rnnkit loads them, so that the
// installed apps (`--plugin PATH.so`, or `plugins = [...]` in a config's [model]) and any program
// can use a cell without being rebuilt.
//
// A plugin is one source file (plus its cells) built as a MODULE library linked to rnnkit::rnnkit
// (the shared library, so the plugin and the app share one registry):
//
//     #include <rnnkit/plugin.h>
//     RNNKIT_PLUGIN("mgu") { mgu::register_mgu(); }
//
// The macro exports the rnnkit ABI tag the plugin was compiled against; load_plugin refuses a
// plugin whose tag differs from the running library's (another rnnkit version, LibTorch version
// or C++ ABI) before running its body. The tag guards against accidents, not attacks: dlopen has
// already run the library's static constructors when the tag is read. Loading a plugin is running
// its code, so it takes the user's consent (--plugin PATH); a checkpoint names the plugins it was
// trained with, with their sha256, but never loads one by itself (docs/reliability.md).
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/version.h>

#include "rnnkit/error.h"
#include "rnnkit/version.h"

#define RNNKIT_PLUGIN_STR2(x) #x
#define RNNKIT_PLUGIN_STR(x) RNNKIT_PLUGIN_STR2(x)
#if defined(_GLIBCXX_USE_CXX11_ABI)
#define RNNKIT_PLUGIN_CXX11_ABI RNNKIT_PLUGIN_STR(_GLIBCXX_USE_CXX11_ABI)
#else
#define RNNKIT_PLUGIN_CXX11_ABI "none"
#endif
#if defined(__GXX_ABI_VERSION)
#define RNNKIT_PLUGIN_GXX_ABI RNNKIT_PLUGIN_STR(__GXX_ABI_VERSION)
#else
#define RNNKIT_PLUGIN_GXX_ABI "none"
#endif
/// What must agree between rnnkit and a plugin: rnnkit's version, LibTorch's major.minor, the
/// C++ ABI version and libstdc++'s string ABI.
#define RNNKIT_ABI_TAG                                                     \
  "rnnkit " RNNKIT_VERSION                                                 \
  "; torch " RNNKIT_PLUGIN_STR(TORCH_VERSION_MAJOR) "." RNNKIT_PLUGIN_STR( \
      TORCH_VERSION_MINOR) "; c++abi " RNNKIT_PLUGIN_GXX_ABI               \
                           "; cxx11-abi " RNNKIT_PLUGIN_CXX11_ABI

/// Defines a plugin named `name`; the braces that follow are its body, which registers its
/// cells (rnnkit::register_cell). rnnkit runs the body once, when it loads the library.
#define RNNKIT_PLUGIN(name)                                                               \
  static void rnnkit_plugin_body_();                                                      \
  extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_abi_tag() { \
    return RNNKIT_ABI_TAG;                                                                \
  }                                                                                       \
  extern "C" __attribute__((visibility("default"))) const char* rnnkit_plugin_name() {    \
    return name;                                                                          \
  }                                                                                       \
  extern "C" __attribute__((visibility("default"))) void rnnkit_plugin_register() {       \
    rnnkit_plugin_body_();                                                                \
  }                                                                                       \
  static void rnnkit_plugin_body_()

namespace rnnkit {

struct PluginInfo {
  std::string path;                ///< absolute, as loaded
  std::string name;                ///< what RNNKIT_PLUGIN named it
  std::vector<std::string> cells;  ///< the cells its body registered
  std::string sha256;              ///< of the file's bytes as loaded (lowercase hex)
};

/// The ABI tag of this rnnkit build (RNNKIT_ABI_TAG as the library was compiled).
std::string abi_tag();

/// The sha256 of a file's bytes as lowercase hex; a PluginError names the file if it cannot be
/// read.
std::string file_sha256(const std::string& path);

/// Loads the plugin at `path` and runs its body once; loading the same file again returns the
/// first load's info. Thread-safe. A plugin may not replace a built-in cell or a cell another
/// plugin registered, and must register at least one cell. With `expected_sha256`, a file whose
/// bytes hash otherwise is refused before dlopen (the message gives both hashes), and so is a
/// file that changed between the hash and the load (another inode, size or modification time).
const PluginInfo& load_plugin(const std::string& path, const std::string& expected_sha256 = "");

/// The plugins loaded so far, in load order.
std::vector<PluginInfo> loaded_plugins();

/// The path of the plugin that registered cell `name`; empty for a built-in cell or one a
/// program registered itself.
std::string cell_plugin(const std::string& name);

}  // namespace rnnkit

#pragma once
// What config.cpp shares with model_config.cpp (the plugins and cells of a config), not installed.
#include <string>

namespace rnnkit::train::internal {

/// A value from a config, cut for a message: a 10 MB string is not echoed whole.
std::string clip(const std::string& s);
/// The sha256 of a loaded plugin, empty if `path` is not loaded (model_config.cpp).
std::string loaded_sha256(const std::string& path);

}  // namespace rnnkit::train::internal

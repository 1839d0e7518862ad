#pragma once
// Between the plugin loader and the registry (private to the library): while a plugin's body
// runs, the registry records which cells it registers, and refuses built-in names.
#include <string>
#include <vector>

namespace rnnkit::detail {

/// Marks the calling thread as running the body of the plugin at `path` until destroyed.
class PluginScope {
 public:
  explicit PluginScope(const std::string& path);
  ~PluginScope();
  PluginScope(const PluginScope&) = delete;
  PluginScope& operator=(const PluginScope&) = delete;
  /// The cells registered in this scope so far.
  const std::vector<std::string>& cells() const;
};

}  // namespace rnnkit::detail

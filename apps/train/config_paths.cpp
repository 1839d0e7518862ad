// A config's paths: the data root, and each path key resolved against the config file's folder
// (or the data root), as ConfigReader reads them.
#include <rnnkit/train/config.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "config_internal.h"

namespace rnnkit::train {
namespace fs = std::filesystem;
using internal::clip;

std::string data_root(const std::string& config_dir) {
  if (const char* env = std::getenv("RNNKIT_DATA"); env && *env) {
    return fs::absolute(env).lexically_normal().string();
  }
  // <repo>/data for the recipes in <repo>/configs; <prefix>/share/rnnkit/data when installed.
  return (fs::path(config_dir.empty() ? fs::current_path().string() : config_dir) / ".." / "data")
      .lexically_normal()
      .string();
}

std::string ConfigReader::resolve_path(const std::string& section, const std::string& key,
                                       const std::string& v) const {
  static const std::string kRoot = "${RNNKIT_DATA}";
  if (v.rfind(kRoot, 0) == 0) {
    const std::string rest = v.substr(kRoot.size());
    const std::string root = data_root(dir_);
    if (std::error_code ec; fs::exists(root, ec) && !fs::is_directory(root, ec)) {
      throw ConfigError(fmt::format(
          "{}: {} is under the data root {}, which is a file, not a folder (RNNKIT_DATA names the "
          "folder that holds the datasets)",
          where(section, key), clip(v), root));
    }
    const std::string path = (fs::path(root).string() + rest);
    if (!fs::exists(path)) {
      // The dataset is the first folder under the root: what fetch_data.sh takes.
      const auto parts = fs::path(rest).relative_path();
      const std::string dataset = parts.empty() ? "" : parts.begin()->string();
      throw ConfigError(fmt::format(
          "{}: {} is {}, which does not exist. The data root (RNNKIT_DATA, default data/ beside "
          "configs/) is filled by scripts/fetch_data.sh: `scripts/fetch_data.sh {}` downloads "
          "it, `scripts/fetch_data.sh --from DIR {}` takes it from a local copy",
          where(section, key), v, path, dataset, dataset));
    }
    return fs::path(path).lexically_normal().string();
  }
  if (v.empty() || fs::path(v).is_absolute() || dir_.empty()) return v;
  return (fs::path(dir_) / v).lexically_normal().string();
}

std::string ConfigReader::get_path(const std::string& section, const std::string& key,
                                   const std::string& fallback) {
  const std::string v = get<std::string>(section, key, fallback);
  const std::string resolved = resolve_path(section, key, v);
  // resolved() (saved beside checkpoints) shows it, so that it works from any directory.
  if (resolved != v && table_[section][key].node()) resolved_paths_[{section, key}] = resolved;
  return resolved;
}

std::vector<std::string> ConfigReader::get_path_list(const std::string& section,
                                                     const std::string& key) {
  const toml::node* node = find(section, key);
  if (!node) return {};
  if (node->is_string()) return {get_path(section, key)};
  const auto* arr = node->as_array();
  if (!arr) fail(section, key, "expected a path or an array of paths");
  std::vector<std::string> out;
  for (const auto& item : *arr) {
    const auto v = item.value_exact<std::string>();
    if (!v) fail(section, key, "expected an array of path strings");
    out.push_back(resolve_path(section, key, *v));
  }
  resolved_path_lists_[{section, key}] = out;
  return out;
}

}  // namespace rnnkit::train

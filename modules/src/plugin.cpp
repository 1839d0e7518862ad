#include "rnnkit/plugin.h"

#include <dlfcn.h>

#include <filesystem>
#include <memory>
#include <mutex>

#include <c10/util/Exception.h>

#include "plugin_loading.h"

namespace rnnkit {
namespace {

struct Plugins {
  std::mutex mutex;  // held for a whole load: two threads loading one file load it once
  std::vector<std::unique_ptr<PluginInfo>> loaded;
};
Plugins& plugins() {
  static Plugins p;
  return p;
}

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

}  // namespace

std::string abi_tag() { return RNNKIT_ABI_TAG; }

const PluginInfo& load_plugin(const std::string& path_in) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path_in.empty()) throw PluginError("load_plugin: expected the path of a plugin, got ''");
  if (!fs::exists(path_in, ec)) {
    throw PluginError(path_in + ": cannot load the plugin: no such file");
  }
  const std::string path = fs::weakly_canonical(fs::absolute(path_in), ec).string();
  auto& p = plugins();
  std::lock_guard<std::mutex> lock(p.mutex);
  for (const auto& info : p.loaded) {
    if (info->path == path) return *info;
  }
  // RTLD_NOW: an unresolved symbol (a plugin linked against another library) is reported
  // here, with the symbol's name, not at the first call. RTLD_LOCAL: two plugins' own symbols
  // cannot clash.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw PluginError(path + ": cannot load the plugin: " + dl_error());
  // A refused plugin is unloaded again; one whose body ran stays (its factories are registered).
  auto refuse = [&](const std::string& why) {
    dlclose(handle);
    throw PluginError(path + ": " + why);
  };
  using Text = const char* (*)();
  auto abi = reinterpret_cast<Text>(dlsym(handle, "rnnkit_plugin_abi_tag"));
  auto name = reinterpret_cast<Text>(dlsym(handle, "rnnkit_plugin_name"));
  auto body = reinterpret_cast<void (*)()>(dlsym(handle, "rnnkit_plugin_register"));
  if (!abi || !name || !body) {
    refuse(
        "not an rnnkit plugin: it does not export rnnkit_plugin_abi_tag, rnnkit_plugin_name "
        "and rnnkit_plugin_register (define the plugin with RNNKIT_PLUGIN from "
        "<rnnkit/plugin.h>)");
  }
  const std::string theirs = abi();
  if (theirs != abi_tag()) {
    refuse("the plugin was built against '" + theirs + "', but this rnnkit is '" + abi_tag() +
           "'; rebuild it against this rnnkit");
  }
  auto info = std::make_unique<PluginInfo>(PluginInfo{path, name(), {}});
  {
    detail::PluginScope scope(path);
    try {
      body();
    } catch (const PluginError&) {
      throw;
    } catch (const c10::Error& e) {
      throw PluginError(path + ": the plugin's registration failed: " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw PluginError(path + ": the plugin's registration failed: " + e.what());
    }
    info->cells = scope.cells();
  }
  if (info->cells.empty()) {
    // A plugin linked to a static copy of rnnkit registers into that copy's registry.
    throw PluginError(path + ": the plugin '" + info->name +
                      "' registered no cell here; register cells in its RNNKIT_PLUGIN body, and "
                      "link it to the shared rnnkit::rnnkit, not to a static copy of rnnkit");
  }
  p.loaded.push_back(std::move(info));
  return *p.loaded.back();
}

std::vector<PluginInfo> loaded_plugins() {
  auto& p = plugins();
  std::lock_guard<std::mutex> lock(p.mutex);
  std::vector<PluginInfo> out;
  for (const auto& info : p.loaded) out.push_back(*info);
  return out;
}

}  // namespace rnnkit

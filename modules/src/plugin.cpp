#include "rnnkit/plugin.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
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

// The plugin being loaded, for the exit guard: a plugin that calls exit() while it loads
// (a static constructor, its body) would end the process with the status it chose, 0 included,
// so that `train && eval` went on with nothing trained.
std::atomic<const std::string*> g_loading{nullptr};

extern "C" void exit_while_loading() {
  if (const std::string* path = g_loading.load()) {
    const std::string line = "rnnkit: error: " + *path +
                             ": the plugin called exit() while it loaded; nothing was done (do "
                             "not load it)\n";
    (void)!::write(STDERR_FILENO, line.data(), line.size());
    ::_exit(1);
  }
}

/// While it lives, an exit() ends the process with status 1 and a line naming the plugin.
struct ExitGuard {
  explicit ExitGuard(const std::string& path) {
    static std::once_flag registered;
    std::call_once(registered, [] {
      std::atexit(exit_while_loading);  // the latest registered runs first
      std::at_quick_exit(exit_while_loading);
    });
    g_loading = &path;
  }
  ~ExitGuard() { g_loading = nullptr; }
  ExitGuard(const ExitGuard&) = delete;
  ExitGuard& operator=(const ExitGuard&) = delete;
};

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

/// A string from a plugin, cut to a few hundred bytes: a plugin's text ends up in messages.
std::string clipped(const char* s) {
  constexpr size_t kMost = 200;
  const size_t n = ::strnlen(s, kMost + 1);
  return n > kMost ? std::string(s, kMost) + "... (cut)" : std::string(s, n);
}

/// Closes a descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// The sha256 of what `fd` holds, read from its start; `path` names it in errors.
std::string sha256_of(int fd, const std::string& path) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw PluginError(path + ": cannot hash the file (OpenSSL's sha256 failed to start)");
  }
  std::vector<char> buf(1 << 16);
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw PluginError(path + ": cannot read the file: " + std::strerror(errno));
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
    at += n;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

/// Opens `path` for reading, refusing what is not a regular file (a directory, a FIFO that
/// would block, a device that never ends) and naming a symlink loop as such.
int open_regular(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT) throw PluginError(path + ": cannot load the plugin: no such file");
    if (e == ELOOP) {
      throw PluginError(path + ": cannot load the plugin: a loop of symbolic links");
    }
    throw PluginError(path + ": cannot load the plugin: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    throw PluginError(path + ": cannot load the plugin: not a regular file (a shared library " +
                      "is one)");
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw PluginError(path + ": cannot open the plugin: " + std::strerror(errno));
  return fd;
}

}  // namespace

std::string abi_tag() { return RNNKIT_ABI_TAG; }

std::string file_sha256(const std::string& path) {
  Fd f{open_regular(path)};
  return sha256_of(f.fd, path);
}

const PluginInfo& load_plugin(const std::string& path_in, const std::string& expected_sha256) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path_in.empty()) throw PluginError("load_plugin: expected the path of a plugin, got ''");
  Fd file{open_regular(path_in)};
  const std::string path = fs::weakly_canonical(fs::absolute(path_in), ec).string();
  const std::string sha = sha256_of(file.fd, path);
  if (!expected_sha256.empty() && sha != expected_sha256) {
    throw PluginError(path +
                      ": the plugin is not the file the model was trained with: its sha256 "
                      "is " +
                      sha + ", the checkpoint records " + expected_sha256 +
                      "; it is refused before any of its code runs");
  }
  auto& p = plugins();
  std::lock_guard<std::mutex> lock(p.mutex);
  for (const auto& info : p.loaded) {
    if (info->path == path && info->sha256 == sha) return *info;
  }
  // The file dlopen maps must be the file that was hashed: the path still names the same inode,
  // unchanged since (size and modification time). (dlopen cannot take the descriptor itself:
  // "/proc/self/fd/N" is matched by name against earlier loads, and N is reused.)
  struct stat hashed {
  }, now{};
  if (::fstat(file.fd, &hashed) != 0 || ::stat(path.c_str(), &now) != 0 ||
      hashed.st_dev != now.st_dev || hashed.st_ino != now.st_ino || hashed.st_size != now.st_size ||
      hashed.st_mtim.tv_sec != now.st_mtim.tv_sec ||
      hashed.st_mtim.tv_nsec != now.st_mtim.tv_nsec) {
    throw PluginError(path + ": the plugin changed while it was checked; it is refused");
  }
  // RTLD_NOW: an unresolved symbol (a plugin linked against another library) is reported here,
  // with the symbol's name, not at the first call. RTLD_LOCAL: two plugins' own symbols cannot
  // clash.
  const ExitGuard exit_guard(path);
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    std::string why = dl_error();
    if (why.rfind(path + ": ", 0) == 0) why = why.substr(path.size() + 2);  // named above
    throw PluginError(path + ": cannot load the plugin: " + why);
  }
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
  const char* abi_text = abi();
  if (abi_text == nullptr) refuse("its rnnkit_plugin_abi_tag() returned a null pointer");
  const std::string theirs = clipped(abi_text);
  if (theirs != abi_tag()) {
    refuse("the plugin was built against '" + theirs + "', but this rnnkit is '" + abi_tag() +
           "'; rebuild it against this rnnkit");
  }
  const char* name_text = name();
  if (name_text == nullptr) refuse("its rnnkit_plugin_name() returned a null pointer");
  auto info = std::make_unique<PluginInfo>(PluginInfo{path, clipped(name_text), {}, sha});
  {
    detail::PluginScope scope(path);
    const std::string failed = path + ": the plugin's registration failed: ";
    try {
      body();
    } catch (const PluginError&) {
      throw;
    } catch (const c10::Error& e) {
      throw PluginError(failed + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw PluginError(failed + e.what());
    } catch (...) {
      // `throw 42`: without this, std::terminate, naming no plugin.
      throw PluginError(failed + "it threw something that is not a std::exception");
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

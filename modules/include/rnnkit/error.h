#pragma once
// The library throws one family of exceptions: c10::Error, as TORCH_CHECK does for a wrong shape,
// type or option value, and two subclasses that say more:
//  - CellOptionError (a c10::ValueError, Python's ValueError): a cell option that is unknown, of
//    the wrong type, out of range or fixed by an alias, with the option's name;
//  - PluginError: a plugin that cannot be loaded, with its path and why.
// So `catch (const c10::Error& e)` catches everything the library throws about its input, and
// e.what_without_backtrace() is the message. These two carry no backtrace: what() is the message.
// (`{}` is the empty backtrace in both LibTorch APIs: a std::string in 1.13, a shared pointer to a
// lazily computed one in 2.x.)
#include <string>
#include <utility>

#include <c10/util/Exception.h>

namespace rnnkit {

/// A cell option that is unknown, of the wrong type, out of range or fixed by an alias. `option`
/// is its name, for messages that say where it was set.
class CellOptionError : public c10::ValueError {
 public:
  CellOptionError(std::string option, std::string message)
      : c10::ValueError(std::move(message), {}), option(std::move(option)) {}
  const char* what() const noexcept override { return what_without_backtrace(); }
  std::string option;
};

/// A plugin that cannot be loaded; the message names the path and says why (dlerror's text, a
/// missing entry point, another ABI tag, an exception from its body).
class PluginError : public c10::Error {
 public:
  explicit PluginError(std::string message) : c10::Error(std::move(message), {}) {}
  const char* what() const noexcept override { return what_without_backtrace(); }
};

}  // namespace rnnkit

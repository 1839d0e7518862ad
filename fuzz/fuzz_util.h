#pragma once
// Shared by the libFuzzer targets: the input as a file (the readers take paths) without touching
// the disk, and the rule that every rejection is an std::exception with a message.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <string>

namespace rnnkit_fuzz {

/// An in-memory file (memfd) holding `size` bytes; path() names it for the readers.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) : fd_(::memfd_create("rnnkit-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) std::abort();
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
  }
  ~MemFile() { ::close(fd_); }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

/// Runs `f`; an std::exception is the expected way to refuse bad input and its message must not
/// be empty. Anything else (a crash, a sanitizer report, a foreign exception) is a finding.
template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    if (std::string(e.what()).empty()) std::abort();
  }
}

}  // namespace rnnkit_fuzz

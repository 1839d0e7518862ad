#pragma once
// What a run asks of the operating system, checked: how many cores it may use, exclusive use
// of its run dir, temp files that never collide, and writes whose failures say why (errno).
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>

namespace rnnkit::train {

/// A file could not be written, renamed or created; what() names the path and errno's text.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// "WHAT PATH: strerror(errno)" as an IoError.
[[noreturn]] void throw_io_error(const std::string& what, const std::string& path);
/// The bytes of `path`, which must be a regular file (a FIFO would block, a device never end) of
/// at most `max_bytes`; an IoError names the file as the `what` ("n-gram model") otherwise.
std::string read_regular_file(const std::string& path, uint64_t max_bytes, const std::string& what);
/// open(2) with O_NOFOLLOW and O_CLOEXEC (mode 0644): a symbolic link at `path` is an IoError
/// naming it as the `what` ("lock file", "training log"); other failures return -1 with errno.
int open_no_follow(const std::string& path, int flags, const std::string& what);

/// The cores this process may run on: the CPU affinity mask (sched_getaffinity), capped by a
/// cgroup CPU quota (cgroup v2 cpu.max, v1 cfs_quota_us) when one is set. At least 1.
int available_cores();

/// Makes glibc keep freed memory for reuse instead of handing every large block back to the
/// kernel. By default each block over a few MB (a step's activations and gradients) is an
/// mmap of its own, unmapped when freed and page-faulted in again on the next step; on the
/// 2-core VM of docs/benchmarks.md that was 25-40% of a training step, and it serialized the two
/// threads of a bidirectional layer in the kernel. Memory then stays at the peak of a step, as
/// with PyTorch's caching allocators. RNNKIT_MALLOC=glibc keeps glibc's defaults. Returns
/// whether it changed anything.
bool keep_freed_memory();
/// Debian 12's OpenBLAS (0.3.21) picks its kernels by CPU model when it loads, and on a model it
/// does not know (Intel's Emerald Rapids, family 6 model 207, for one) falls back to its slowest,
/// Prescott's SSE3 kernels: a training step then takes 2.5-3x as long. Nothing can change the
/// choice after the library has loaded, so when OpenBLAS says "Prescott" and the CPU has AVX2
/// (or AVX-512), this re-executes the program once, at the top of main(), with OPENBLAS_CORETYPE
/// set to the kernels the CPU runs (Haswell, or SkylakeX). An OPENBLAS_CORETYPE the user set,
/// RNNKIT_BLAS_CORETYPE=keep, a BLAS that is not OpenBLAS (MKL in CUDA LibTorch builds) or a
/// failed exec leave the process as it is. Returns only when nothing was re-executed.
void choose_blas_kernels(char** argv);
/// OpenBLAS's kernels ("SkylakeX", "Haswell", "Prescott"), or "" for another BLAS.
std::string blas_kernels();
/// The kernels choose_blas_kernels() would ask for on this CPU: "SkylakeX", "Haswell" or "".
std::string best_blas_kernels();

/// The thread count for `requested` (--threads): 0 means OMP_NUM_THREADS when it is set, else
/// available_cores(). Negative values, and values far above the available cores (more than
/// 4x; oversubscription only slows LibTorch's pools down), are an std::invalid_argument.
int resolve_threads(int requested);

/// Exclusive use of a run dir for the lifetime of the object: flock() on RUN_DIR/.lock, which
/// also records the holder's pid and host. A second process gets a RunDirBusy error that names
/// the holder; the same process may take the same dir again (nested phases of one run). The
/// kernel drops the lock when the process dies, so a crash never leaves the dir locked.
class RunDirBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class RunDirLock {
 public:
  explicit RunDirLock(const std::string& dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  std::string key_;
};

/// A name for a temp file next to `path` that no other writer (thread or process) uses:
/// PATH.tmp.PID.N. Temp files are renamed over `path` when complete.
std::string unique_temp_path(const std::string& path);
/// Removes leftover PATH.tmp.* files in `dir` (a writer killed mid-write), returns how many.
/// Call it only while holding the dir's RunDirLock.
int remove_stale_temp_files(const std::string& dir);

/// Writes `text` to `path` through a temp file, fsync and rename: readers see the old file or
/// the new one, never half of one. Failures throw IoError with errno.
void write_text_atomically(const std::string& path, const std::string& text);
/// fsyncs `tmp`, renames it over `path` and fsyncs the folder, throwing IoError on failure.
void commit_file(const std::string& tmp, const std::string& path);

/// An output file whose every failure is an IoError naming the path and errno: opening,
/// writing (checked when flushed) and closing.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path, bool append = false);
  std::ofstream& stream() { return out_; }
  template <class T>
  OutputFile& operator<<(const T& v) {
    out_ << v;
    return *this;
  }
  /// Flushes and closes; throws IoError if anything written so far failed.
  void close();
  ~OutputFile();  ///< closes without throwing; call close() to see errors
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace rnnkit::train

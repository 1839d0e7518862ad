#include <rnnkit/train/system.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

namespace rnnkit::train {
namespace fs = std::filesystem;

void throw_io_error(const std::string& what, const std::string& path) {
  int e = errno;
  if (e == 0) {
    // A stream that failed earlier has lost its errno: a full file system is the usual cause.
    struct statvfs fs {};
    const auto dir = fs::absolute(path).parent_path();
    if (::statvfs(dir.c_str(), &fs) == 0 && fs.f_bavail == 0) e = ENOSPC;
  }
  throw IoError(what + " " + path + ": " + (e ? std::strerror(e) : "unknown error"));
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes,
                              const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_io_error("cannot open the " + what, path);
  if (!S_ISREG(st.st_mode)) {
    throw IoError(path + ": not a regular file (a directory, a pipe or a device); expected the " +
                  what);
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    throw IoError(path + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                  std::to_string(max_bytes) + " an " + what + " may have");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_io_error("cannot open the " + what, path);
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<size_t>(in.gcount()) != bytes.size())
    throw_io_error("cannot read the " + what, path);
  return bytes;
}

int open_no_follow(const std::string& path, int flags, const std::string& what) {
  const int fd = ::open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ELOOP) {
    throw IoError(path + ": the " + what + " is a symbolic link; rnnkit writes its " + what +
                  " through no link (a link could point at any file): remove it");
  }
  return fd;
}

namespace {

/// A cgroup CPU quota in cores (quota / period), or 0 when there is none.
double quota_in_cores(const std::string& quota_text, const std::string& period_text) {
  if (quota_text.empty() || quota_text == "max" || quota_text[0] == '-') return 0;
  try {
    const double q = std::stod(quota_text), p = std::stod(period_text);
    return q > 0 && p > 0 ? q / p : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

std::string first_line(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

/// The smallest CPU quota on the way from this process's cgroup to the root, in cores; 0: none.
double cgroup_cores() {
  double best = 0;
  auto take = [&](double c) {
    if (c > 0 && (best == 0 || c < best)) best = c;
  };
  // cgroup v2: "0::/some/path" in /proc/self/cgroup, cpu.max = "QUOTA PERIOD" or "max PERIOD".
  std::ifstream self("/proc/self/cgroup");
  for (std::string line; std::getline(self, line);) {
    if (line.rfind("0::", 0) != 0) continue;
    for (fs::path p = fs::path("/sys/fs/cgroup") / line.substr(4);; p = p.parent_path()) {
      std::istringstream is(first_line(p / "cpu.max"));
      std::string q, period;
      if (is >> q >> period) take(quota_in_cores(q, period));
      if (p == "/sys/fs/cgroup" || p == p.parent_path()) break;
    }
  }
  // cgroup v1.
  for (const char* dir : {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"}) {
    take(quota_in_cores(first_line(fs::path(dir) / "cpu.cfs_quota_us"),
                        first_line(fs::path(dir) / "cpu.cfs_period_us")));
  }
  return best;
}

}  // namespace

bool keep_freed_memory() {
  const char* choice = std::getenv("RNNKIT_MALLOC");
  if (choice != nullptr && std::string(choice) == "glibc") return false;
  // Blocks up to 1 GiB come from the heap and stay there when freed (the top of the heap is
  // trimmed only past 2 GiB free); larger ones are still mapped on their own.
  const bool ok = ::mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1;
  return ::mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1 && ok;
}

std::string blas_kernels() {
  // Looked up, not linked: the BLAS is whatever LibTorch was built with.
  using Corename = char* (*)();
  const auto get = reinterpret_cast<Corename>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = get != nullptr ? get() : nullptr;
  return name != nullptr ? std::string(name) : std::string();
}

std::string best_blas_kernels() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return "";
}

void choose_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // the user's, or ours after the exec
  const char* keep = std::getenv("RNNKIT_BLAS_CORETYPE");
  if (keep != nullptr && std::string(keep) == "keep") return;
  std::string now = blas_kernels();
  for (auto& ch : now) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (now != "prescott") return;
  const std::string best = best_blas_kernels();
  if (best.empty() || argv == nullptr || argv[0] == nullptr) return;
  // The file itself, not /proc/self/exe: the process's name (ps, pgrep, top) comes from the
  // path exec'ed.
  std::error_code error;
  const auto self = fs::read_symlink("/proc/self/exe", error);
  if (error) return;
  ::setenv("OPENBLAS_CORETYPE", best.c_str(), 1);
  ::execv(self.c_str(), argv);
  ::unsetenv("OPENBLAS_CORETYPE");  // exec failed: carry on with the kernels there are
}

int available_cores() {
  int cores = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
  if (cores <= 0) cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const double quota = cgroup_cores();
  if (quota > 0) cores = std::min(cores, static_cast<int>(std::ceil(quota)));
  return std::max(cores, 1);
}

int resolve_threads(int requested) {
  const int cores = available_cores();
  const int limit = 4 * cores;
  if (requested < 0) {
    throw std::invalid_argument(
        "--threads must be 0 (all available cores) or a positive count, got " +
        std::to_string(requested));
  }
  if (requested > limit) {
    throw std::invalid_argument("--threads " + std::to_string(requested) + " is far above the " +
                                std::to_string(cores) + " core(s) this process may use (at most " +
                                std::to_string(limit) + "); 0 uses them all");
  }
  if (requested > 0) return requested;
  if (const char* omp = std::getenv("OMP_NUM_THREADS"); omp && *omp) {
    char* end = nullptr;
    const long n = std::strtol(omp, &end, 10);
    if (end && *end == '\0' && n > 0 && n <= limit) return static_cast<int>(n);
    throw std::invalid_argument(std::string("OMP_NUM_THREADS='") + omp +
                                "': expected a thread count from 1 to " + std::to_string(limit));
  }
  return cores;
}

namespace {

struct HeldLock {
  int fd = -1;
  int count = 0;
};
std::mutex g_locks_mutex;
std::map<std::string, HeldLock> g_locks;

}  // namespace

RunDirLock::RunDirLock(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError("cannot create the run dir " + dir + ": " + ec.message());
  key_ = fs::weakly_canonical(dir).string();
  std::lock_guard<std::mutex> guard(g_locks_mutex);
  auto it = g_locks.find(key_);
  if (it != g_locks.end()) {
    ++it->second.count;
    return;
  }
  const std::string path = (fs::path(key_) / ".lock").string();
  const int fd = open_no_follow(path, O_RDWR | O_CREAT, "lock file");
  if (fd < 0) throw_io_error("cannot create the lock file", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char buf[256] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    if (e != EWOULDBLOCK) {
      errno = e;
      throw_io_error("cannot lock", path);
    }
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw RunDirBusy("the run dir " + dir + " is in use by another run (" +
                     (holder.empty() ? std::string("holder unknown") : holder) +
                     "); wait for it to finish, or give this run another --run-dir");
  }
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  const std::string who = "process " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) < 0) {
    ::close(fd);
    throw_io_error("cannot write", path);
  }
  g_locks[key_] = HeldLock{fd, 1};
}

RunDirLock::~RunDirLock() {
  std::lock_guard<std::mutex> guard(g_locks_mutex);
  auto it = g_locks.find(key_);
  if (it == g_locks.end() || --it->second.count > 0) return;
  // The lock file stays (removing it would race with a process that has it open); the lock
  // itself goes with the descriptor.
  ::close(it->second.fd);
  g_locks.erase(it);
}

std::string unique_temp_path(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

int remove_stale_temp_files(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.find(".tmp.") != std::string::npos) {
      if (fs::remove(e.path(), ec)) ++removed;
    }
  }
  return removed;
}

namespace {

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void commit_file(const std::string& tmp, const std::string& path) {
  fsync_path(tmp, false);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    errno = e;
    throw_io_error("cannot rename " + tmp + " to", path);
  }
  fsync_path(fs::absolute(path).parent_path().string(), true);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = unique_temp_path(path);
  try {
    OutputFile out(tmp);
    out << text;
    out.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  commit_file(tmp, path);
}

namespace {
/// An appended file (metrics.csv) may not be a link: appending would write through it.
const std::string& refuse_symlink_for_append(const std::string& path, bool append) {
  struct stat st {};
  if (append && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    throw IoError(path +
                  ": is a symbolic link; rnnkit appends to no file through a link (a link "
                  "could point at any file): remove it");
  }
  return path;
}
}  // namespace

OutputFile::OutputFile(const std::string& path, bool append)
    : path_(refuse_symlink_for_append(path, append)),
      out_(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc)) {
  if (!out_) throw_io_error("cannot open for writing", path);
}

void OutputFile::close() {
  // A write that failed already (a full disk) set errno then: report it, not a later one's 0.
  if (!out_) throw_io_error("cannot write", path_);
  errno = 0;
  out_.flush();
  if (!out_) throw_io_error("cannot write", path_);
  out_.close();
  if (!out_) throw_io_error("cannot close", path_);
}

OutputFile::~OutputFile() = default;

}  // namespace rnnkit::train

#include <rnnkit/train/log.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <streambuf>

#include <rnnkit/train/distributed.h>
#include <rnnkit/train/system.h>
#include <rnnkit/train/train.h>

namespace rnnkit::train {
namespace {

/// The log file, written line by line; '\r' restarts the pending line (a progress bar redraw).
class LogSink {
 public:
  explicit LogSink(int fd) : fd_(fd) {}
  void write(const char* data, size_t n) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < n; ++i) {
      const char c = data[i];
      if (c == '\r') {
        pending_.clear();
      } else {
        pending_ += c;
        if (c == '\n') flush_locked();
      }
    }
  }
  void flush() {
    std::lock_guard<std::mutex> lock(mutex_);
    flush_locked();
  }

 private:
  void flush_locked() {
    // A failing log write must not stop the run: the terminal still has everything.
    for (size_t done = 0; done < pending_.size();) {
      const ssize_t w = ::write(fd_, pending_.data() + done, pending_.size() - done);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
    pending_.clear();
  }
  int fd_;
  std::mutex mutex_;
  std::string pending_;
};

/// Writes to a file descriptor (the terminal side) and to the log.
void write_both(int fd, LogSink& log, const char* data, size_t n) {
  for (size_t done = 0; done < n;) {
    const ssize_t w = ::write(fd, data + done, n - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  log.write(data, n);
}

/// For std::cout and std::cerr: unbuffered, each write goes to both at once.
class TeeBuf : public std::streambuf {
 public:
  TeeBuf(int fd, LogSink& log) : fd_(fd), log_(log) {}

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      const char ch = static_cast<char>(c);
      write_both(fd_, log_, &ch, 1);
    }
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    write_both(fd_, log_, s, static_cast<size_t>(n));
    return n;
  }

 private:
  int fd_;
  LogSink& log_;
};

struct Cookie {
  int fd;
  LogSink* log;
};

ssize_t cookie_write(void* c, const char* data, size_t n) {
  auto* k = static_cast<Cookie*>(c);
  write_both(k->fd, *k->log, data, n);
  return static_cast<ssize_t>(n);
}

}  // namespace

struct TrainLog::Impl {
  int fd = -1;
  std::unique_ptr<LogSink> sink;
  std::unique_ptr<TeeBuf> out_buf, err_buf;
  std::streambuf *old_out = nullptr, *old_err = nullptr;
  Cookie out_cookie{}, err_cookie{};
  FILE *old_stdout = nullptr, *old_stderr = nullptr, *new_stdout = nullptr, *new_stderr = nullptr;
};

TrainLog::TrainLog(const std::string& path, bool append, const std::string& command_line)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.fd = open_no_follow(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), "training log");
  if (m.fd < 0) throw_io_error("cannot open the training log", path);
  m.sink = std::make_unique<LogSink>(m.fd);
  char when[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", std::localtime(&now));
  const std::string header = "=== " + std::string(when) + ": " + command_line + "\n";
  m.sink->write(header.data(), header.size());
  std::cout.flush();
  std::cerr.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  m.out_buf = std::make_unique<TeeBuf>(STDOUT_FILENO, *m.sink);
  m.err_buf = std::make_unique<TeeBuf>(STDERR_FILENO, *m.sink);
  m.old_out = std::cout.rdbuf(m.out_buf.get());
  m.old_err = std::cerr.rdbuf(m.err_buf.get());
  // C stdio (fmt::print(stderr, ...)): stdout and stderr are glibc variables; point them at
  // unbuffered cookie streams that write to both.
  m.out_cookie = {STDOUT_FILENO, m.sink.get()};
  m.err_cookie = {STDERR_FILENO, m.sink.get()};
  const cookie_io_functions_t io{nullptr, cookie_write, nullptr, nullptr};
  m.new_stdout = ::fopencookie(&m.out_cookie, "w", io);
  m.new_stderr = ::fopencookie(&m.err_cookie, "w", io);
  if (m.new_stdout && m.new_stderr) {
    std::setvbuf(m.new_stdout, nullptr, _IOLBF, 0);
    std::setvbuf(m.new_stderr, nullptr, _IONBF, 0);
    m.old_stdout = stdout;
    m.old_stderr = stderr;
    stdout = m.new_stdout;
    stderr = m.new_stderr;
  }
}

TrainLog::~TrainLog() {
  auto& m = *impl_;
  std::cout.flush();
  std::cerr.flush();
  if (m.old_stdout) {
    std::fflush(stdout);
    std::fflush(stderr);
    stdout = m.old_stdout;
    stderr = m.old_stderr;
  }
  if (m.new_stdout) std::fclose(m.new_stdout);
  if (m.new_stderr) std::fclose(m.new_stderr);
  std::cout.rdbuf(m.old_out);
  std::cerr.rdbuf(m.old_err);
  m.sink->flush();
  ::close(m.fd);
}

void TrainLog::note(const std::string& line) {
  impl_->sink->write(line.data(), line.size());
  impl_->sink->write("\n", 1);
}

int with_train_log(const RunOptions& run, const std::string& command_line,
                   const std::function<int()>& body) {
  if (dist::Env::read().rank != 0) return body();
  namespace fs = std::filesystem;
  const bool existed = fs::exists(run.run_dir);
  try {
    const RunDirLock lock(run.run_dir);
    TrainLog log((fs::path(run.run_dir) / "train.log").string(), !run.overwrite, command_line);
    try {
      return body();
    } catch (const std::exception& e) {
      log.note(std::string("error: ") + e.what());
      throw;
    }
  } catch (...) {
    // A run that failed before writing anything (a bad config, a missing file) leaves no run
    // dir behind: only one it made itself, holding only its lock and its log, is removed.
    std::error_code ec;
    bool only_ours = !existed;
    for (const auto& e : fs::directory_iterator(run.run_dir, ec)) {
      const auto name = e.path().filename().string();
      if (name != ".lock" && name != "train.log") only_ours = false;
    }
    if (only_ours && !ec) fs::remove_all(run.run_dir, ec);
    throw;
  }
}

std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

}  // namespace rnnkit::train

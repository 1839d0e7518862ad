#pragma once
// train.log: a copy of everything a training command prints (stdout and stderr) in its run dir,
// next to what the terminal shows. The copy is made as each write happens (no pipe, no thread),
// so a crash loses nothing on either side. A progress bar redrawn with \r is logged as its
// final state per line.
#include <functional>
#include <memory>
#include <string>

namespace rnnkit::train {

/// Copies stdout and stderr (C stdio and the C++ streams) into `path` from construction to
/// destruction; `append` keeps what the file holds (a resumed run), otherwise it is replaced.
/// What was printed since the process started is not in it; a header line with the command and
/// the time starts each invocation's part.
class TrainLog {
 public:
  TrainLog(const std::string& path, bool append, const std::string& command_line);
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;
  /// A line for the log only (the terminal gets it another way, such as an error message).
  void note(const std::string& line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The command line, for the log's header.
std::string command_line(int argc, char** argv);

struct RunOptions;
/// Runs a training command's body with the run dir locked and RUN_DIR/train.log kept (rank 0 of
/// a data-parallel run; the others just run it). The log is appended to, except under
/// --overwrite; an error that ends the command is noted in it too.
int with_train_log(const RunOptions& run, const std::string& command_line,
                   const std::function<int()>& body);

}  // namespace rnnkit::train

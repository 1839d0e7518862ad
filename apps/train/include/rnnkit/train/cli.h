#pragma once
// Command-line pieces every app shares: the run options, config loading with --set overrides,
// input read line by line, and error reporting.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <rnnkit/data/text.h>
#include <cxxopts.hpp>

#include "config.h"
#include "config_keys.h"
#include "json.h"
#include "train.h"

namespace rnnkit::train {

/// --config, --set, --seed, --device, --threads, --run-dir, --resume, --overwrite, --max-steps,
/// --quiet, --dist-backend, --dist-timeout.
void add_train_options(cxxopts::Options& cli);
/// --device, --threads, --plugin (for eval, predict, sample...).
void add_runtime_options(cxxopts::Options& cli);
/// --checkpoint and the runtime options: for commands that load a trained model.
void add_model_options(cxxopts::Options& cli);
/// The value of a string option the command cannot do without ("--X is required" otherwise).
std::string required(const cxxopts::ParseResult& args, const std::string& option);
/// The runtime options of a command that loads a model (--device, --threads); loads the
/// --plugin libraries.
RunOptions run_options(const cxxopts::ParseResult& args, const std::string& default_run_dir);
/// Everything add_train_options defines, checked; `distributed` is set (torchrun's environment,
/// when present, makes the run data-parallel), and ranks other than 0 are quiet.
RunOptions train_run_options(const cxxopts::ParseResult& args, const std::string& default_run_dir);
/// The input file of an eval command: --file (where "-" is stdin), or stdin when it is piped;
/// a usage error when there is neither (a terminal would wait for typed input).
std::string input_file(const cxxopts::ParseResult& args);
/// The config named by --config, with every --set applied; its data.max_line_bytes (common_keys)
/// is the limit of every reader from then on, and the plugins of --plugin and of its [model]
/// (ConfigReader::load_plugins) are loaded, so that reading it checks their cells.
ConfigReader load_config(const cxxopts::ParseResult& args);
/// Loads each --plugin (again is a no-op).
void load_cli_plugins(const cxxopts::ParseResult& args);
/// The keys every app's config has besides its own: data.max_line_bytes.
KeyTable common_keys();
/// runs/<config file stem>, relative to the working directory.
std::string default_run_dir(const std::string& config_path);

/// A `PROGRAM train` command: the training options and --help, the config (--config, --set),
/// the run options (default run dir: default_run_dir), a StopGuard, and the run's train.log
/// around `train`, which returns the exit status (report_done after a fit()).
int train_command(int argc, char** argv, const std::string& program, const std::string& about,
                  const std::function<int(ConfigReader& config, const RunOptions& run)>& train);
/// The same, with the app's config keys at the end of --help: `tables`, each with a title
/// ("[data] and [model]", "[train]").
int train_command(int argc, char** argv, const std::string& program, const std::string& about,
                  const std::vector<std::pair<std::string, KeyTable>>& tables,
                  const std::function<int(ConfigReader& config, const RunOptions& run)>& train);
/// `PROGRAM config-keys`: the same tables as Markdown, as configs/README.md has them.
int config_keys_command(const std::vector<std::pair<std::string, KeyTable>>& tables);

/// --batch-size, for the commands that read InputBatches.
void add_input_batch_option(cxxopts::Options& cli);

/// Input for predict and score, in batches: from a file up to --batch-size lines at a time
/// (default 256, fast); from stdin (no --file, or --file -) one line at a time unless
/// --batch-size is given, so that each line's output can be written and flushed before the next
/// is read and the command works as a filter in a pipe. Lines get data::LineReader's checks
/// either way (CR, NUL bytes, UTF-8, encoding).
class InputBatches {
 public:
  InputBatches(const cxxopts::ParseResult& args, data::Encoding encoding);
  /// The next lines (at most 1 from stdin); false at the end.
  bool next(std::vector<std::string>& lines);
  bool streaming() const { return streaming_; }
  /// A DataError naming the input and the line of lines[index] of the last next().
  data::DataError line_error(size_t index, const std::string& message) const {
    return {reader_.path(), first_line_ + index, message};
  }
  /// Refuses a line with no text, as eval's readers do ("FILE:LINE: an empty line ...").
  void refuse_empty(const std::vector<std::string>& lines, const std::string& what) const;

 private:
  data::LineReader reader_;
  bool streaming_;
  size_t most_;
  size_t first_line_ = 1;
};

/// Flushes stdout and throws an IoError naming errno's text if anything written to it failed
/// (a full disk, a closed pipe): a command writing endless output stops at the first failure.
void flush_stdout();

/// Runs an app's main: prints errors as "PROGRAM: error: ..." on stderr and returns 1; a usage
/// error returns 2.
int guarded_main(const char* program, const std::function<int(int, char**)>& body, int argc,
                 char** argv);

/// One subcommand of an app: `PROGRAM NAME [options]` runs `run(argc - 1, argv + 1)`.
struct Command {
  const char* name;
  const char* help;  ///< one line for the usage text
  int (*run)(int argc, char** argv);
};
/// An app's whole main: the commands in a table. `--help`/`-h` lists them on stdout,
/// `--version` prints the versions; no command or an unknown one is a usage error (stderr, 2);
/// errors as guarded_main reports them.
int run_app(const char* program, const std::vector<Command>& commands, int argc, char** argv);
/// `PROGRAM plugin check PATH...`: loads each plugin in a child process first, so that one that
/// aborts or crashes (which no in-process check can catch) is reported by its signal instead of
/// taking the command down; then prints its name, cells and sha256. Exit status 0 when every
/// plugin loads, 1 otherwise. Every app has it as its "plugin" command.
int plugin_command(int argc, char** argv);
/// The table entry of plugin_command.
inline Command plugin_command_entry() {
  return {"plugin", "plugin check PATH...: load cell plugins in a child process and report",
          plugin_command};
}
/// "PROGRAM 0.2.0 (LibTorch 1.13.0, CUDA: ...)": what --version prints.
std::string version_text(const std::string& program);

}  // namespace rnnkit::train

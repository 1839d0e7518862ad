#pragma once
// Command-line pieces every app shares: the run options, config loading with --set overrides,
// and the one-JSON-object output of `eval --json`.
#include <string>
#include <utility>
#include <vector>

#include <cxxopts.hpp>
#include <rnnkit/data/text.h>

#include "config.h"
#include "train.h"

namespace rnnkit::app {

/// --config, --set, --seed, --device, --threads, --run-dir, --resume, --max-steps, --quiet.
void add_train_options(cxxopts::Options& cli);
/// --device, --threads (for eval, predict, sample...).
void add_runtime_options(cxxopts::Options& cli);
/// --checkpoint and the runtime options: for commands that load a trained model.
void add_model_options(cxxopts::Options& cli);
/// The value of a string option the command cannot do without ("--X is required" otherwise).
std::string required(const cxxopts::ParseResult& args, const std::string& option);
RunOptions run_options(const cxxopts::ParseResult& args, const std::string& default_run_dir);
/// The config named by --config, with every --set applied.
ConfigReader load_config(const cxxopts::ParseResult& args);
/// runs/<config file stem>, relative to the working directory.
std::string default_run_dir(const std::string& config_path);

/// The lines of --file (read and checked as data::LineReader does), or of stdin without it.
std::vector<std::string> read_input_lines(const cxxopts::ParseResult& args, data::Encoding encoding);

/// A flat JSON object, keys in insertion order.
class JsonObject {
 public:
  JsonObject& add(const std::string& key, double value);
  JsonObject& add(const std::string& key, int64_t value);
  JsonObject& add(const std::string& key, const std::string& value);
  JsonObject& add_raw(const std::string& key, const std::string& json);
  std::string str() const;
  static std::string quote(const std::string& s);

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

/// Runs an app's main: prints errors as "PROGRAM: error: ..." on stderr and returns 1; a usage
/// error returns 2.
int guarded_main(const char* program, int (*body)(int, char**), int argc, char** argv);

}  // namespace rnnkit::app

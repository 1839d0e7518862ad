#include "cli.h"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <rnnkit/data/text.h>

#include "checkpoint.h"

namespace rnnkit::app {

void add_runtime_options(cxxopts::Options& cli) {
  cli.add_options("runtime")
      ("device", "cpu, cuda or cuda:N", cxxopts::value<std::string>()->default_value("cpu"))
      ("threads", "CPU threads (0: all cores)", cxxopts::value<int>()->default_value("0"));
}

void add_model_options(cxxopts::Options& cli) {
  cli.add_options("model")("checkpoint", "a checkpoint (best.pt or last.pt of a run)",
                           cxxopts::value<std::string>());
  add_runtime_options(cli);
}

std::string required(const cxxopts::ParseResult& args, const std::string& option) {
  if (!args.count(option)) throw cxxopts::exceptions::exception("--" + option + " is required");
  return args[option].as<std::string>();
}

void add_train_options(cxxopts::Options& cli) {
  cli.add_options("training")
      ("config", "TOML config (see configs/)", cxxopts::value<std::string>())
      ("set", "override a config value: section.key=value (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("run-dir", "checkpoints, config and metrics go here (default: runs/<config name>)",
       cxxopts::value<std::string>())
      ("seed", "override train.seed (the same seed on the same CPU gives the same numbers)",
       cxxopts::value<int64_t>())
      ("resume", "continue the run in --run-dir from its last checkpoint")
      ("max-steps", "stop after this many steps, writing the last checkpoint",
       cxxopts::value<int64_t>()->default_value("0"))
      ("quiet", "no progress output");
  add_runtime_options(cli);
}

std::string default_run_dir(const std::string& config_path) {
  return (std::filesystem::path("runs") / std::filesystem::path(config_path).stem()).string();
}

RunOptions run_options(const cxxopts::ParseResult& args, const std::string& default_dir) {
  RunOptions r;
  r.device = args["device"].as<std::string>();
  r.threads = args["threads"].as<int>();
  if (args.count("run-dir")) r.run_dir = args["run-dir"].as<std::string>();
  else r.run_dir = default_dir;
  if (args.count("resume")) r.resume = true;
  if (args.count("max-steps")) r.max_steps = args["max-steps"].as<int64_t>();
  if (args.count("quiet")) r.quiet = true;
  return r;
}

ConfigReader load_config(const cxxopts::ParseResult& args) {
  const std::string path = required(args, "config");
  std::vector<std::string> sets;
  if (args.count("set")) sets = args["set"].as<std::vector<std::string>>();
  if (args.count("seed")) sets.push_back("train.seed=" + std::to_string(args["seed"].as<int64_t>()));
  return ConfigReader(path, sets);
}

std::vector<std::string> read_input_lines(const cxxopts::ParseResult& args, data::Encoding encoding) {
  std::vector<std::string> lines;
  std::string line;
  if (args.count("file")) {
    data::LineReader r(args["file"].as<std::string>(), encoding);
    while (r.next(line)) lines.push_back(line);
  } else {
    while (std::getline(std::cin, line)) lines.push_back(line);
  }
  return lines;
}

std::string JsonObject::quote(const std::string& s) {
  std::ostringstream os;
  os << '"';
  for (const unsigned char c : s) {
    switch (c) {
      case '"': os << "\\\""; break;
      case '\\': os << "\\\\"; break;
      case '\n': os << "\\n"; break;
      case '\r': os << "\\r"; break;
      case '\t': os << "\\t"; break;
      default:
        if (c < 0x20) os << "\\u" << std::hex << std::setw(4) << std::setfill('0') << int(c) << std::dec;
        else os << c;
    }
  }
  os << '"';
  return os.str();
}

JsonObject& JsonObject::add(const std::string& key, double value) {
  fields_.emplace_back(key, std::isfinite(value) ? fmt::format("{:.10g}", value) : "null");
  return *this;
}
JsonObject& JsonObject::add(const std::string& key, int64_t value) {
  fields_.emplace_back(key, std::to_string(value));
  return *this;
}
JsonObject& JsonObject::add(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, quote(value));
  return *this;
}
JsonObject& JsonObject::add_raw(const std::string& key, const std::string& json) {
  fields_.emplace_back(key, json);
  return *this;
}

std::string JsonObject::str() const {
  std::string s = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    s += (i ? ", " : "") + quote(fields_[i].first) + ": " + fields_[i].second;
  }
  return s + "}";
}

int guarded_main(const char* program, int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << program << ": usage error: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << program << ": error: " << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
  }
  return 1;
}

}  // namespace rnnkit::app

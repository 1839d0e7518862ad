#include <rnnkit/train/cli.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <rnnkit/compat.h>
#include <rnnkit/data/text.h>
#include <rnnkit/plugin.h>
#include <rnnkit/version.h>
#include <torch/cuda.h>

#include <rnnkit/train/checkpoint.h>
#include <rnnkit/train/distributed.h>
#include <rnnkit/train/log.h>
#include <rnnkit/train/signals.h>

namespace rnnkit::train {
namespace {
// The most data.max_line_bytes and --max-line-bytes may raise the limit to: 1 GiB.
constexpr int64_t kMaxLineBytesLimit = int64_t{1} << 30;
}  // namespace

void add_runtime_options(cxxopts::Options& cli) {
  cli.add_options("runtime")("device", "cpu, cuda or cuda:N",
                             cxxopts::value<std::string>()->default_value("cpu"))(
      "threads", "CPU threads (0: all cores)", cxxopts::value<int>()->default_value("0"))(
      "plugin", "load a cell plugin (a shared library built with RNNKIT_PLUGIN; repeatable)",
      cxxopts::value<std::vector<std::string>>());
}

void add_model_options(cxxopts::Options& cli) {
  cli.add_options("model")("checkpoint", "a checkpoint (best.pt or last.pt of a run)",
                           cxxopts::value<std::string>())(
      "trust-checkpoint-plugins",
      "load the cell plugins the checkpoint records (each checked against its recorded sha256); "
      "without it a checkpoint loads no code, and a plugin cell needs --plugin PATH")(
      "max-line-bytes",
      "the longest input line taken (bytes; default 1048576); a longer one is "
      "an error naming the line",
      cxxopts::value<int64_t>())(
      "precision",
      "fp32, bf16 (the products in bf16, the rest fp32; any checkpoint loads) or fp16 (CUDA)",
      cxxopts::value<std::string>()->default_value("fp32"));
  add_runtime_options(cli);
}

std::string required(const cxxopts::ParseResult& args, const std::string& option) {
  if (!args.count(option)) throw cxxopts::exceptions::exception("--" + option + " is required");
  return args[option].as<std::string>();
}

void add_train_options(cxxopts::Options& cli) {
  cli.add_options("training")("config", "TOML config (see configs/)",
                              cxxopts::value<std::string>())(
      "set", "override a config value: section.key=value (repeatable)",
      cxxopts::value<std::vector<std::string>>())(
      "run-dir", "checkpoints, config and metrics go here (default: runs/<config name>)",
      cxxopts::value<std::string>())(
      "seed", "override train.seed (the same seed on the same CPU gives the same numbers)",
      cxxopts::value<int64_t>())("resume",
                                 "continue the run in --run-dir from its last checkpoint")(
      "auto-resume",
      "continue the run in --run-dir if it holds last.pt, else start it (for restarted jobs)")(
      "overwrite", "start afresh in a --run-dir that holds a run, replacing its checkpoints")(
      "max-steps", "stop after this many steps, writing the last checkpoint",
      cxxopts::value<int64_t>()->default_value("0"))("quiet", "no progress output");
  cli.add_options("data-parallel (under torchrun)")(
      "dist-backend", "gloo or nccl (default: nccl for CUDA when built in, else gloo)",
      cxxopts::value<std::string>()->default_value(""))(
      "dist-timeout", "seconds before a lost rank or an unreachable rendezvous is an error",
      cxxopts::value<double>()->default_value("300"));
  add_runtime_options(cli);
}

std::string input_file(const cxxopts::ParseResult& args) {
  if (args.count("file")) return args["file"].as<std::string>();
  if (!::isatty(STDIN_FILENO)) return "-";
  throw cxxopts::exceptions::exception(
      "--file is required (or pipe the text to stdin, or give --file -)");
}

std::string default_run_dir(const std::string& config_path) {
  return (std::filesystem::path("runs") / std::filesystem::path(config_path).stem()).string();
}

int train_command(int argc, char** argv, const std::string& program, const std::string& about,
                  const std::function<int(ConfigReader& config, const RunOptions& run)>& train) {
  return train_command(argc, argv, program, about, {}, train);
}

int train_command(int argc, char** argv, const std::string& program, const std::string& about,
                  const std::vector<std::pair<std::string, KeyTable>>& tables,
                  const std::function<int(ConfigReader& config, const RunOptions& run)>& train) {
  cxxopts::Options cli(program, about);
  add_train_options(cli);
  cli.add_options()("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) {
    std::cout << cli.help() << "\n";
    if (!tables.empty()) {
      std::cout << "\nConfig keys (in the --config file, or --set section.key=value):\n";
      for (const auto& [title, t] : tables) std::cout << "\n" << title << ":\n" << t.help_text();
    }
    return 0;
  }
  auto config = load_config(args);
  const auto run = train_run_options(args, default_run_dir(config.path()));
  const StopGuard stop;
  return with_train_log(run, program.substr(0, program.find(' ')) + " " + command_line(argc, argv),
                        [&] { return train(config, run); });
}

RunOptions run_options(const cxxopts::ParseResult& args, const std::string& default_dir) {
  trust_checkpoint_plugins(args.count("trust-checkpoint-plugins") > 0);
  if (args.count("max-line-bytes")) {
    const int64_t n = args["max-line-bytes"].as<int64_t>();
    if (n < 1 || n > kMaxLineBytesLimit) {
      throw cxxopts::exceptions::exception(
          fmt::format("--max-line-bytes must be in [1, {}], got {}", kMaxLineBytesLimit, n));
    }
    data::set_max_line_bytes(static_cast<size_t>(n));
  }
  load_cli_plugins(args);
  RunOptions r;
  r.device = args["device"].as<std::string>();
  if (args.count("precision")) r.precision = args["precision"].as<std::string>();
  r.threads = args["threads"].as<int>();
  if (r.threads < 0)
    throw cxxopts::exceptions::exception("--threads must be 0 (all cores) or more, got " +
                                         std::to_string(r.threads));
  r.run_dir = default_dir;
  return r;
}

RunOptions train_run_options(const cxxopts::ParseResult& args, const std::string& default_dir) {
  RunOptions r = run_options(args, default_dir);
  if (args.count("run-dir")) r.run_dir = args["run-dir"].as<std::string>();
  if (r.run_dir.empty()) throw cxxopts::exceptions::exception("--run-dir must not be empty");
  r.resume = args.count("resume") > 0;
  r.auto_resume = args.count("auto-resume") > 0;
  r.overwrite = args.count("overwrite") > 0;
  if (r.resume + r.auto_resume + r.overwrite > 1) {
    throw cxxopts::exceptions::exception("give one of --resume, --auto-resume and --overwrite");
  }
  r.max_steps = args["max-steps"].as<int64_t>();
  if (r.max_steps < 0) {
    throw cxxopts::exceptions::exception(
        "--max-steps must be 0 (no limit) or a positive step count, got " +
        std::to_string(r.max_steps));
  }
  r.quiet = args.count("quiet") > 0;
  r.distributed = true;
  r.dist.backend = args["dist-backend"].as<std::string>();
  if (!r.dist.backend.empty() && r.dist.backend != "gloo" && r.dist.backend != "nccl") {
    throw cxxopts::exceptions::exception("--dist-backend: expected gloo or nccl, got '" +
                                         r.dist.backend + "'");
  }
  r.dist.timeout_s = args["dist-timeout"].as<double>();
  if (!(r.dist.timeout_s > 0))
    throw cxxopts::exceptions::exception("--dist-timeout must be a positive number of seconds");
  // Only rank 0 of a data-parallel run talks to the terminal and owns the run dir.
  if (dist::Env::read().rank != 0) {
    r.quiet = true;
  } else {
    check_run_dir(r);  // before any data is read: a refused run costs nothing
  }
  return r;
}

void load_cli_plugins(const cxxopts::ParseResult& args) {
  if (args.count("plugin")) {  // loading one twice is a no-op (the same path and bytes)
    for (const auto& p : args["plugin"].as<std::vector<std::string>>()) load_plugin(p);
  }
}

ConfigReader load_config(const cxxopts::ParseResult& args) {
  const std::string path = required(args, "config");
  std::vector<std::string> sets;
  if (args.count("set")) sets = args["set"].as<std::vector<std::string>>();
  if (args.count("seed"))
    sets.push_back("train.seed=" + std::to_string(args["seed"].as<int64_t>()));
  ConfigReader c(path, sets);
  if (args.count("seed")) c.set_origin("train.seed", "--seed");
  // Before any reader runs; the resolved config keeps it for eval of the run's checkpoints.
  data::set_max_line_bytes(
      static_cast<size_t>(c.integer(common_keys().at("data", "max_line_bytes"))));
  // The cells' names and options are checked as they are read: --plugin's cells, then the
  // config's own plugins, are registered first.
  load_cli_plugins(args);
  c.load_plugins("model");
  return c;
}

int config_keys_command(const std::vector<std::pair<std::string, KeyTable>>& tables) {
  for (size_t i = 0; i < tables.size(); ++i) {
    std::cout << (i ? "\n" : "") << "### " << tables[i].first << "\n\n"
              << tables[i].second.markdown();
  }
  return 0;
}

KeyTable common_keys() {
  return KeyTable({integer("data", "max_line_bytes",
                           static_cast<int64_t>(data::kDefaultMaxLineBytes), 1, kMaxLineBytesLimit,
                           "the longest line any reader takes; a longer one stops the run naming "
                           "the file and the line. Commands that load a model take "
                           "`--max-line-bytes`")});
}

void add_input_batch_option(cxxopts::Options& cli) {
  cli.add_options()("batch-size",
                    "lines per batch, 1..4096 (default: 256 from --file, 1 from stdin, so that "
                    "each line is answered before the next is read)",
                    cxxopts::value<int64_t>());
}

namespace {
size_t input_batch_size(const cxxopts::ParseResult& args, bool streaming) {
  if (!args.count("batch-size")) return streaming ? 1 : 256;
  const auto n = args["batch-size"].as<int64_t>();
  if (n < 1 || n > 4096) {
    throw cxxopts::exceptions::exception(
        fmt::format("--batch-size: expected 1..4096 lines, got {}", n));
  }
  return static_cast<size_t>(n);
}
}  // namespace

InputBatches::InputBatches(const cxxopts::ParseResult& args, data::Encoding encoding)
    : reader_(args.count("file") ? args["file"].as<std::string>() : "-", encoding,
              /*streaming=*/true),
      streaming_(!args.count("file") || args["file"].as<std::string>() == "-"),
      most_(input_batch_size(args, streaming_)) {}

bool InputBatches::next(std::vector<std::string>& lines) {
  lines.clear();
  first_line_ = reader_.line_number() + 1;
  std::string line;
  while (lines.size() < most_ && reader_.next(line)) lines.push_back(std::move(line));
  return !lines.empty();
}

void InputBatches::refuse_empty(const std::vector<std::string>& lines,
                                const std::string& what) const {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t\r\f\v") == std::string::npos) {
      throw line_error(i, "an empty line; there is no text to " + what +
                              " (eval refuses it too): remove it, or give one text per line");
    }
  }
}

void flush_stdout() {
  errno = 0;
  std::cout.flush();
  if (!std::cout) {
    throw IoError(std::string("cannot write to stdout: ") +
                  (errno ? std::strerror(errno) : "write error") + "; stopped");
  }
}

int guarded_main(const char* program, const std::function<int(int, char**)>& body, int argc,
                 char** argv) {
  choose_blas_kernels(argv);
  keep_freed_memory();
  // A file-size limit (ulimit -f) is an error to report, with the file and the clean-up of a
  // failed write, not a kill that leaves a temp file behind.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    const int status = body(argc, argv);
    // Output that never reached its file or pipe (a full disk, a closed pipe) is a failure too.
    errno = 0;
    std::cout.flush();
    if (!std::cout) {
      std::cerr << program << ": error: cannot write to stdout: "
                << (errno ? std::strerror(errno) : "write error") << "\n";
      return 1;
    }
    return status;
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << program << ": usage error: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const Interrupted& e) {
    // A stop before training began (while the data loaded): nothing to save.
    std::cerr << program << ": " << signal_name(e.signal)
              << ": stopped before training began; nothing was written\n";
    return exit_status_for_signal(e.signal);
  } catch (const c10::Error& e) {
    std::cerr << program << ": error: " << e.what_without_backtrace() << "\n";
  } catch (const std::filesystem::filesystem_error& e) {
    // The path and the reason, not libstdc++'s "filesystem error: ... [path]".
    std::cerr << program << ": error: " << e.path1().string() << ": " << e.code().message()
              << (e.code().value() == ELOOP ? " (a symlink loop?)" : "") << "\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
  }
  return 1;
}

}  // namespace rnnkit::train

namespace rnnkit::train {

int plugin_command(int argc, char** argv) {
  const std::string sub = argc > 1 ? argv[1] : "";
  if (sub != "check" || argc < 3) {
    throw cxxopts::exceptions::exception(
        "expected: plugin check PATH... (loads each cell plugin in a child process first)");
  }
  int failed = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string path = argv[i];
    int out[2];
    if (::pipe(out) != 0) throw_io_error("cannot make a pipe for", path);
    std::cout.flush();
    std::cerr.flush();
    const pid_t child = ::fork();
    if (child < 0) throw_io_error("cannot fork to check", path);
    if (child == 0) {
      ::close(out[0]);
      std::string report;
      int status = 0;
      try {
        const PluginInfo& info = load_plugin(path);
        report = fmt::format("{}: plugin '{}', cells {}, sha256 {}\n", info.path, info.name,
                             fmt::join(info.cells, ", "), info.sha256);
      } catch (const std::exception& e) {
        report = std::string(e.what()) + "\n";
        status = 1;
      }
      const ssize_t n = ::write(out[1], report.data(), report.size());
      (void)n;
      ::_exit(status);
    }
    ::close(out[1]);
    std::string report;
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof(buf))) > 0;) report.append(buf, n);
    ::close(out[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    if (WIFSIGNALED(status)) {
      const int sig = WTERMSIG(status);
      std::cerr << path << ": the plugin killed the process that loaded it (" << strsignal(sig)
                << ", signal " << sig << "); do not load it\n";
      ++failed;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      std::cout << report;
    } else {
      std::cerr << report;
      ++failed;
    }
  }
  return failed ? 1 : 0;
}

std::string version_text(const std::string& program) {
  std::string cuda;
  if (!torch::cuda::is_available()) {
    cuda = at::hasCUDA() ? "built in, no GPU visible" : "not in this LibTorch build";
  } else {
    cuda = fmt::format("{} GPU(s)", torch::cuda::device_count());
  }
  const std::string blas = blas_kernels();
  return fmt::format("{} {} (LibTorch {}, CUDA: {}{})", program, RNNKIT_VERSION, torch_version(),
                     cuda, blas.empty() ? "" : ", OpenBLAS kernels: " + blas);
}

int run_app(const char* program, const std::vector<Command>& commands, int argc, char** argv) {
  std::string usage = fmt::format("usage: {} COMMAND [options]\ncommands:\n", program);
  size_t width = 0;
  for (const auto& c : commands) width = std::max(width, std::string(c.name).size());
  for (const auto& c : commands) usage += fmt::format("  {:<{}}  {}\n", c.name, width, c.help);
  usage +=
      fmt::format("'{} COMMAND --help' lists a command's options; '{} --version' the versions.\n",
                  program, program);
  return guarded_main(
      program,
      [&](int n, char** v) {
        if (n < 2) return std::cerr << usage, 2;
        const std::string cmd = v[1];
        if (cmd == "--help" || cmd == "-h") return std::cout << usage, 0;
        if (cmd == "--version") return std::cout << version_text(program) << "\n", 0;
        for (const auto& c : commands) {
          // cxxopts sees "PROGRAM COMMAND" as the program name.
          if (cmd == c.name) return c.run(n - 1, v + 1);
        }
        std::cerr << program << ": unknown command '" << cmd << "'\n" << usage;
        return 2;
      },
      argc, argv);
}

}  // namespace rnnkit::train

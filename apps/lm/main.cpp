// rnnkit-lm: word- and character-level recurrent language models.
//
//   rnnkit-lm train  --config configs/lm_char_shakespeare.toml [--set train.epochs=2]
//   rnnkit-lm eval   --checkpoint runs/lm_char_shakespeare/best.pt --file valid.txt [--json]
//   rnnkit-lm sample --checkpoint ... [--prompt "ROMEO:"] [--temperature 0.8] [--top-k 10]
//   rnnkit-lm score  --checkpoint ... [--file sentences.txt]   (stdin without --file)
#include <fstream>
#include <iostream>

#include <fmt/core.h>

#include "../common/cli.h"
#include "lm.h"

namespace {

using namespace rnnkit;

const char* kUsage =
    "usage: rnnkit-lm COMMAND [options]\n"
    "commands:\n"
    "  train   train a model from a TOML config\n"
    "  eval    perplexity (and bits per character) of a checkpoint on a text file\n"
    "  sample  generate text from a checkpoint\n"
    "  score   log-probability and perplexity of each line of a file or of stdin\n"
    "'rnnkit-lm COMMAND --help' lists a command's options.\n";

int cmd_train(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-lm train", "Train a recurrent language model");
  app::add_train_options(cli);
  cli.add_options()("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  auto config = app::load_config(args);
  const auto run = app::run_options(args, app::default_run_dir(config.path()));
  const auto r = lm::train(config, run);
  if (!run.quiet && !r.interrupted) {
    std::cerr << "done: " << r.epochs_done << " epochs, " << r.steps << " steps; checkpoints in "
              << run.run_dir << "\n";
  }
  return 0;
}

int cmd_eval(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-lm eval", "Perplexity of a checkpoint on a text file");
  app::add_runtime_options(cli);
  cli.add_options()
      ("checkpoint", "a checkpoint (best.pt or last.pt)", cxxopts::value<std::string>())
      ("file", "text file, read with the training vocabulary", cxxopts::value<std::string>())
      ("batch-size", "parallel streams (1: the state carried through the whole file)",
       cxxopts::value<int64_t>()->default_value("1"))
      ("json", "print one JSON object of metrics on stdout")
      ("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  if (!args.count("checkpoint") || !args.count("file")) {
    throw cxxopts::exceptions::exception("eval needs --checkpoint and --file");
  }
  app::RunOptions run = app::run_options(args, "");
  const auto device = app::setup_runtime(run, 0);
  auto m = lm::load_model(args["checkpoint"].as<std::string>(), device);
  const std::string file = args["file"].as<std::string>();
  std::vector<int64_t> ids{data::Vocab::kEos};
  for (auto id : m.vocab.encode(m.config.tokenize_file(file))) ids.push_back(id);
  const auto p = lm::evaluate_stream(*m.model, ids, m.config.bptt,
                                     args["batch-size"].as<int64_t>(), device);
  if (args.count("json")) {
    app::JsonObject j;
    j.add("file", file).add("tokens", p.tokens).add("loss", p.loss).add("perplexity", p.perplexity());
    if (m.config.level == "char") j.add("bits_per_char", p.bits_per_token());
    std::cout << j.str() << "\n";
  } else {
    std::cout << fmt::format("{}: {} tokens, loss {:.4f} nats/token, perplexity {:.2f}", file,
                             p.tokens, p.loss, p.perplexity());
    if (m.config.level == "char") std::cout << fmt::format(", {:.4f} bits/char", p.bits_per_token());
    std::cout << "\n";
  }
  return 0;
}

int cmd_sample(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-lm sample", "Generate text from a checkpoint");
  app::add_runtime_options(cli);
  lm::SampleOptions d;
  cli.add_options()
      ("checkpoint", "a checkpoint", cxxopts::value<std::string>())
      ("prompt", "text to start from", cxxopts::value<std::string>()->default_value(""))
      ("temperature", "divides the logits (lower: safer)", cxxopts::value<double>()->default_value("1.0"))
      ("top-k", "draw among the k most likely tokens (0: all)", cxxopts::value<int64_t>()->default_value("0"))
      ("greedy", "always take the most likely token")
      ("seed", "the same seed gives the same text", cxxopts::value<uint64_t>()->default_value("1"))
      ("length", "maximum tokens to generate", cxxopts::value<int64_t>()->default_value("500"))
      ("no-stop", "word level: do not stop at <eos>, write a newline and go on")
      ("allow-unk", "let <unk> be drawn")
      ("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  if (!args.count("checkpoint")) throw cxxopts::exceptions::exception("sample needs --checkpoint");
  const auto device = app::setup_runtime(app::run_options(args, ""), 0);
  auto m = lm::load_model(args["checkpoint"].as<std::string>(), device);
  lm::SampleOptions o;
  o.prompt = args["prompt"].as<std::string>();
  o.temperature = args["temperature"].as<double>();
  o.top_k = args["top-k"].as<int64_t>();
  o.greedy = args.count("greedy") > 0;
  o.seed = args["seed"].as<uint64_t>();
  o.max_length = args["length"].as<int64_t>();
  o.stop_at_eos = !args.count("no-stop");
  o.no_unk = !args.count("allow-unk");
  if (o.temperature < 0) throw cxxopts::exceptions::exception("--temperature must be >= 0");
  std::cout << o.prompt << lm::sample(m, o, device) << "\n";
  return 0;
}

int cmd_score(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-lm score", "Log-probability and perplexity of each line");
  app::add_runtime_options(cli);
  cli.add_options()
      ("checkpoint", "a checkpoint", cxxopts::value<std::string>())
      ("file", "lines to score (default: stdin)", cxxopts::value<std::string>())
      ("json", "JSON lines on stdout")
      ("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  if (!args.count("checkpoint")) throw cxxopts::exceptions::exception("score needs --checkpoint");
  const auto device = app::setup_runtime(app::run_options(args, ""), 0);
  auto m = lm::load_model(args["checkpoint"].as<std::string>(), device);
  std::unique_ptr<data::LineReader> file;
  if (args.count("file")) file = std::make_unique<data::LineReader>(args["file"].as<std::string>(), m.config.encoding);
  std::string line;
  auto next = [&] { return file ? file->next(line) : static_cast<bool>(std::getline(std::cin, line)); };
  while (next()) {
    const auto s = lm::score_line(m, line, device);
    if (args.count("json")) {
      std::cout << app::JsonObject().add("text", line).add("tokens", s.tokens)
                       .add("logprob", s.logprob).add("perplexity", s.perplexity()).str() << "\n";
    } else {
      std::cout << fmt::format("{:.4f}\t{:.2f}\t{}", s.logprob, s.perplexity(), line) << "\n";
    }
  }
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  // cxxopts sees "rnnkit-lm COMMAND" as the program name.
  if (cmd == "train") return cmd_train(argc - 1, argv + 1);
  if (cmd == "eval") return cmd_eval(argc - 1, argv + 1);
  if (cmd == "sample") return cmd_sample(argc - 1, argv + 1);
  if (cmd == "score") return cmd_score(argc - 1, argv + 1);
  std::cerr << "rnnkit-lm: unknown command '" << cmd << "'\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) { return rnnkit::app::guarded_main("rnnkit-lm", run, argc, argv); }

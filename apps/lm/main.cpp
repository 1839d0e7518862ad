// rnnkit-lm: word- and character-level recurrent language models.
//
//   rnnkit-lm train  --config configs/lm_char_shakespeare.toml [--set train.epochs=2]
//   rnnkit-lm eval   --checkpoint runs/lm_char_shakespeare/best.pt --file valid.txt [--json]
//   rnnkit-lm sample --checkpoint ... [--prompt "ROMEO:"] [--temperature 0.8] [--top-k 10]
//   rnnkit-lm score  --checkpoint ... [--file sentences.txt]   (stdin without --file)
#include <cmath>
#include <fstream>
#include <iostream>

#include <fmt/core.h>

#include <rnnkit/train/cli.h>
#include <rnnkit/train/log.h>
#include <rnnkit/train/signals.h>
#include "lm.h"
#include "ngram.h"

namespace {

using namespace rnnkit;

/// The config keys, for train --help and config-keys.
std::vector<std::pair<std::string, train::KeyTable>> config_tables() {
  return {{"[data] and [model]", lm::LMConfig::keys()}, {"[train]", train::TrainOptions::keys()}};
}

int cmd_config_keys(int, char**) { return train::config_keys_command(config_tables()); }

int cmd_train(int argc, char** argv) {
  return train::train_command(argc, argv, "rnnkit-lm train", "Train a recurrent language model",
                              config_tables(),
                              [](train::ConfigReader& config, const train::RunOptions& run) {
                                return train::report_done(run, lm::train(config, run));
                              });
}

int cmd_eval(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-lm eval", "Perplexity of a checkpoint on a text file");
  train::add_model_options(cli);
  cli.add_options()("file", "text file, read with the training vocabulary ('-' or none: stdin)",
                    cxxopts::value<std::string>())(
      "batch-size", "parallel streams (1: the state carried through the whole file)",
      cxxopts::value<int64_t>()->default_value("1"))(
      "json", "print one JSON object of metrics on stdout")("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  train::RunOptions run = train::run_options(args, "");
  const auto device = train::setup_runtime(run, 0);
  auto m = lm::load_model(train::required(args, "checkpoint"), device);
  const std::string file = train::input_file(args);
  const auto ids = lm::encode_stream(m.vocab, m.config.tokenize_file(file));
  lm::report_unk_rate(file, m.vocab, ids, /*quiet=*/false);
  const int64_t batch_size = args["batch-size"].as<int64_t>();
  if (batch_size < 1)
    throw cxxopts::exceptions::exception("--batch-size must be at least 1, got " +
                                         std::to_string(batch_size));
  const auto p = lm::evaluate_stream(*m.model, ids, m.config.bptt, batch_size, device);
  if (!std::isfinite(p.loss)) {
    throw std::runtime_error(file +
                             ": the loss is not finite; the model produces non-finite values");
  }
  if (args.count("json")) {
    train::Json j{
        {"file", file}, {"tokens", p.tokens}, {"loss", p.loss}, {"perplexity", p.perplexity()}};
    if (m.config.level == "char") j["bits_per_char"] = p.bits_per_token();
    j["autocast"] = run.precision;  // --precision ("fp32": autocast off)
    train::print_json(std::cout, j);
  } else {
    std::cout << fmt::format("{}: {} tokens, loss {:.4f} nats/token, perplexity {:.2f}", file,
                             p.tokens, p.loss, p.perplexity());
    if (m.config.level == "char")
      std::cout << fmt::format(", {:.4f} bits/char", p.bits_per_token());
    std::cout << "\n";
  }
  return 0;
}

int cmd_sample(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-lm sample", "Generate text from a checkpoint");
  train::add_model_options(cli);
  cli.add_options()("prompt", "text to start from",
                    cxxopts::value<std::string>()->default_value(""))(
      "temperature", "divides the logits (lower: safer; 0, or below 1e-6: greedy)",
      cxxopts::value<double>()->default_value("1.0"))(
      "top-k", "draw among the k most likely tokens (default: all)", cxxopts::value<int64_t>())(
      "greedy", "always take the most likely token")(
      "seed", "the same seed gives the same text", cxxopts::value<uint64_t>()->default_value("1"))(
      "length", "maximum tokens to generate", cxxopts::value<int64_t>()->default_value("500"))(
      "no-stop", "word level: do not stop at <eos>, write a newline and go on")(
      "allow-unk", "let <unk> be drawn")("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  lm::SampleOptions o;
  o.prompt = args["prompt"].as<std::string>();
  o.temperature = args["temperature"].as<double>();
  o.top_k = args.count("top-k") ? args["top-k"].as<int64_t>() : 0;
  o.greedy = args.count("greedy") > 0;
  o.seed = args["seed"].as<uint64_t>();
  o.max_length = args["length"].as<int64_t>();
  o.stop_at_eos = !args.count("no-stop");
  o.no_unk = !args.count("allow-unk");
  // Checked before the model loads: a typo costs nothing.
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature)) {
    throw cxxopts::exceptions::exception("--temperature must be a number >= 0 (0: greedy)");
  }
  if (args.count("top-k") && o.top_k < 1) {
    throw cxxopts::exceptions::exception("--top-k must be at least 1, got " +
                                         std::to_string(o.top_k) +
                                         " (leave it out to draw from the whole vocabulary)");
  }
  if (o.max_length < 1) {
    throw cxxopts::exceptions::exception("--length must be at least 1, got " +
                                         std::to_string(o.max_length));
  }
  if (const auto bad = data::find_invalid_utf8(o.prompt); bad >= 0) {
    throw cxxopts::exceptions::exception("--prompt is not valid UTF-8 (byte " +
                                         std::to_string(bad + 1) + ")");
  }
  const auto device = train::setup_runtime(train::run_options(args, ""), 0);
  auto m = lm::load_model(train::required(args, "checkpoint"), device);
  std::cout << o.prompt << std::flush;
  lm::sample(m, o, device, [](const std::string& piece) {
    std::cout << piece;
    train::flush_stdout();  // a full disk or a closed pipe stops a long sample at once
  });
  std::cout << "\n";
  return 0;
}

int cmd_score(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-lm score", "Log-probability and perplexity of each line");
  train::add_model_options(cli);
  train::add_input_batch_option(cli);
  cli.add_options()("file", "lines to score (default: stdin)", cxxopts::value<std::string>())(
      "json", "JSON lines on stdout")("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  const auto device = train::setup_runtime(train::run_options(args, ""), 0);
  auto m = lm::load_model(train::required(args, "checkpoint"), device);
  train::InputBatches input(args, m.config.encoding);
  for (std::vector<std::string> lines; input.next(lines);) {
    for (const auto& line : lines) {
      const auto s = lm::score_line(m, line, device);
      if (!std::isfinite(s.logprob))
        throw std::runtime_error("the log-probability of '" + line.substr(0, 60) +
                                 "' is not finite");
      // An empty line has no token: no perplexity (null, "-"), not 1.0.
      if (args.count("json")) {
        train::print_json(std::cout, lm::score_json(line, s));
      } else if (s.tokens > 0) {
        std::cout << fmt::format("{:.4f}\t{:.2f}\t{}", s.logprob, s.perplexity(), line) << "\n";
      } else {
        std::cout << "-\t-\t" << line << "\n";
      }
      train::flush_stdout();
    }
  }
  return 0;
}

int cmd_ngram(int argc, char** argv) {
  const std::string sub = argc > 1 ? argv[1] : "";
  cxxopts::Options cli("rnnkit-lm ngram " + sub, "The n-gram baseline language model");
  cli.add_options()("config",
                    "train: an lm config; its [data] section gives the text and vocabulary",
                    cxxopts::value<std::string>())("set", "override a config value",
                                                   cxxopts::value<std::vector<std::string>>())(
      "order", "train: n, 1 to 5", cxxopts::value<int>()->default_value("5"))(
      "smoothing", "train: add_delta, backoff or kn",
      cxxopts::value<std::string>()->default_value("kn"))(
      "delta", "train: δ for add_delta and backoff",
      cxxopts::value<double>()->default_value("1.0"))("output", "train: where to write the model",
                                                      cxxopts::value<std::string>())(
      "model", "eval, sample: a model written by ngram train", cxxopts::value<std::string>())(
      "file", "eval: text file", cxxopts::value<std::string>())(
      "json", "eval: one JSON object on stdout")("prompt", "sample: text to start from",
                                                 cxxopts::value<std::string>()->default_value(""))(
      "length", "sample: tokens", cxxopts::value<int64_t>()->default_value("50"))(
      "seed", "sample: seed", cxxopts::value<uint64_t>()->default_value("1"))(
      "no-stop", "sample: do not stop at <eos>")("h,help", "this help");
  if (sub == "--help" || sub == "-h") return std::cout << cli.help() << "\n", 0;
  const auto args = cli.parse(argc - 1, argv + 1);
  if (sub.empty()) return std::cerr << cli.help() << "\n", 2;
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  if (sub == "train") {
    auto config = train::load_config(args);
    const auto c = lm::LMConfig::read(config);
    const auto tokens = c.tokenize_file(c.train_path);
    lm::NGramModel m(args["order"].as<int>(),
                     lm::parse_smoothing(args["smoothing"].as<std::string>()),
                     args["delta"].as<double>(), lm::build_vocab(c, tokens), c.level);
    m.train(lm::encode_stream(m.vocab(), tokens));
    const std::string out = train::required(args, "output");
    m.save(out);
    const auto sizes = m.sizes();
    std::cerr << "n-gram counts:";
    for (size_t k = 0; k < sizes.size(); ++k) std::cerr << " " << k + 1 << "-grams " << sizes[k];
    int64_t n = 0;
    const double ce =
        m.cross_entropy(lm::encode_stream(m.vocab(), c.tokenize_file(c.valid_path)), &n);
    std::cerr << fmt::format("\nvalidation ({}): {} tokens, perplexity {:.2f}\nwrote {}\n",
                             c.valid_path, n, std::exp(ce), out);
    return 0;
  }
  if (sub == "eval" || sub == "sample") {
    const auto m = lm::NGramModel::load(train::required(args, "model"));
    lm::LMConfig c;  // tokenization only: the level the model was trained at
    c.level = m.level();
    if (sub == "eval") {
      const std::string file = train::required(args, "file");
      int64_t n = 0;
      const double ce = m.cross_entropy(lm::encode_stream(m.vocab(), c.tokenize_file(file)), &n);
      if (args.count("json")) {
        train::print_json(std::cout, {{"file", file},
                                      {"order", m.order()},
                                      {"smoothing", lm::to_string(m.smoothing())},
                                      {"tokens", n},
                                      {"loss", ce},
                                      {"perplexity", std::exp(ce)}});
      } else {
        std::cout << fmt::format("{}: {} tokens, {}-gram {}, loss {:.4f}, perplexity {:.2f}\n",
                                 file, n, m.order(), lm::to_string(m.smoothing()), ce,
                                 std::exp(ce));
      }
      return 0;
    }
    const auto prompt = args["prompt"].as<std::string>();
    const auto ids =
        m.sample(lm::encode_stream(m.vocab(), c.tokenize_line(prompt)),
                 args["length"].as<int64_t>(), !args.count("no-stop"), args["seed"].as<uint64_t>());
    std::cout << prompt << (prompt.empty() || c.level == "char" ? "" : " ")
              << c.detokenize(m.vocab().decode(ids)) << "\n";
    return 0;
  }
  throw cxxopts::exceptions::exception("ngram: expected train, eval or sample, got '" + sub + "'");
}

int cmd_export(int argc, char** argv) { return lm::export_main(argc, argv); }

}  // namespace

int main(int argc, char** argv) {
  return rnnkit::train::run_app(
      "rnnkit-lm",
      {{"train", "train a model from a TOML config", cmd_train},
       {"eval", "perplexity (and bits per character) of a checkpoint on a text file", cmd_eval},
       {"sample", "generate text from a checkpoint", cmd_sample},
       {"score", "log-probability and perplexity of each line of a file or of stdin", cmd_score},
       {"ngram", "the n-gram baseline: ngram train|eval|sample", cmd_ngram},
       {"export",
        "the language model as an ONNX file with its vocabularies as JSON (docs/export.md)",
        cmd_export},
       rnnkit::train::plugin_command_entry(),
       {"config-keys", "the config keys as Markdown tables (as configs/README.md has them)",
        cmd_config_keys}},
      argc, argv);
}

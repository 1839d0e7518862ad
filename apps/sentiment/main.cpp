// rnnkit-sentiment: many-to-one recurrent text classification.
//
//   rnnkit-sentiment train   --config configs/sentiment_uci.toml
//   rnnkit-sentiment cv      --config configs/sentiment_rt_polarity.toml      (k-fold)
//   rnnkit-sentiment eval    --checkpoint runs/sentiment_uci/best.pt --file test.tsv [--json]
//   rnnkit-sentiment predict --checkpoint runs/sentiment_uci/best.pt [--file lines.txt] [--json]
//   ... --checkpoint A/best.pt --ensemble B/best.pt --ensemble C/best.pt   (mean probabilities)
#include <iostream>

#include <fmt/core.h>

#include <rnnkit/train/cli.h>
#include <rnnkit/train/log.h>
#include <rnnkit/train/signals.h>
#include "sentiment.h"

namespace {

using namespace rnnkit;

int run_train(train::ConfigReader& config, const train::RunOptions& run) {
  const auto r = sentiment::train(config, run);
  if (!run.quiet && !r.interrupted) {
    std::cerr << "done: " << r.epochs_done << " epochs, " << r.steps << " steps; checkpoints in "
              << run.run_dir << "\n";
  }
  return train::exit_status(r);
}

int run_cv(train::ConfigReader& config, const train::RunOptions& run) {
  const auto r = sentiment::cross_validate(config, run);
  if (r.interrupted) {
    std::cout << fmt::format(
        "cross-validation stopped after {} complete folds; --resume continues it\n",
        r.accuracy.size());
    return r.signal ? train::exit_status_for_signal(r.signal) : 1;
  }
  std::cout << fmt::format("{}-fold cross-validation: accuracy {:.2f}% ± {:.2f} (std over folds)\n",
                           r.accuracy.size(), 100 * r.mean_accuracy(), 100 * r.std_accuracy());
  for (size_t k = 0; k < r.accuracy.size(); ++k) {
    std::cout << fmt::format("  fold {}: accuracy {:.2f}%, macro-F1 {:.2f}\n", k + 1,
                             100 * r.accuracy[k], 100 * r.macro_f1[k]);
  }
  return 0;
}

/// The config keys, for train --help and config-keys.
std::vector<std::pair<std::string, train::KeyTable>> config_tables() {
  return {{"[data] and [model]", sentiment::SentimentConfig::keys()},
          {"[train]", train::TrainOptions::keys()}};
}

int cmd_config_keys(int, char**) { return train::config_keys_command(config_tables()); }

int cmd_train(int argc, char** argv, bool cv) {
  return train::train_command(argc, argv, cv ? "rnnkit-sentiment cv" : "rnnkit-sentiment train",
                              cv ? "k-fold cross-validation (data.folds)" : "Train a classifier",
                              config_tables(),
                              [cv](train::ConfigReader& config, const train::RunOptions& run) {
                                return cv ? run_cv(config, run) : run_train(config, run);
                              });
}

void add_ensemble_option(cxxopts::Options& cli) {
  cli.add_options("model")("ensemble",
                           "another checkpoint whose class probabilities are averaged with "
                           "--checkpoint's (repeatable; same labels)",
                           cxxopts::value<std::vector<std::string>>());
}

std::vector<sentiment::Loaded> load_models(const cxxopts::ParseResult& args,
                                           const torch::Device& device) {
  std::vector<std::string> paths{train::required(args, "checkpoint")};
  if (args.count("ensemble")) {
    for (const auto& p : args["ensemble"].as<std::vector<std::string>>()) paths.push_back(p);
  }
  return sentiment::load_models(paths, device);
}

int cmd_eval(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-sentiment eval", "Evaluate a checkpoint on labelled files");
  train::add_model_options(cli);
  add_ensemble_option(cli);
  cli.add_options()("file",
                    "labelled file(s) in the config's format (repeatable; '-' or none: stdin)",
                    cxxopts::value<std::vector<std::string>>())(
      "json", "print one JSON object of metrics on stdout")("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  const auto run = train::run_options(args, "");
  const auto device = train::setup_runtime(run, 0);
  auto models = load_models(args, device);
  const auto& m = models.front();
  const auto files = args.count("file") ? args["file"].as<std::vector<std::string>>()
                                        : std::vector<std::string>{train::input_file(args)};
  const auto r = sentiment::evaluate(models, files, device);
  if (args.count("json")) {
    train::Json j = train::to_json(r, m.labels);
    j["autocast"] = run.precision;  // --precision ("fp32": autocast off)
    train::print_json(std::cout, j);
  } else {
    std::cout << train::format_report(r, m.labels);
  }
  return 0;
}

int cmd_predict(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-sentiment predict", "Label each line of a file or of stdin");
  train::add_model_options(cli);
  train::add_input_batch_option(cli);
  add_ensemble_option(cli);
  cli.add_options()("file", "lines of text (default: stdin)", cxxopts::value<std::string>())(
      "json", "JSON lines: text, label, probabilities")("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  const auto device = train::setup_runtime(train::run_options(args, ""), 0);
  auto models = load_models(args, device);
  const auto& m = models.front();
  train::InputBatches input(args, m.config.encoding);
  for (std::vector<std::string> lines; input.next(lines);) {
    input.refuse_empty(lines, "classify");
    const auto probs = sentiment::ensemble_probabilities(models, lines, device);
    for (size_t i = 0; i < lines.size(); ++i) {
      if (args.count("json")) {
        std::cout << train::json_line(sentiment::classification_json(lines[i], probs[i], m.labels))
                  << "\n";
      } else {
        const int64_t k = probs[i].argmax().item<int64_t>();
        std::cout << m.labels[k];
        for (size_t c = 0; c < m.labels.size(); ++c) {
          std::cout << fmt::format("\t{}={:.3f}", m.labels[c], probs[i][c].item<double>());
        }
        std::cout << "\t" << lines[i] << "\n";
      }
    }
    train::flush_stdout();
  }
  return 0;
}

int cmd_fit(int argc, char** argv) { return cmd_train(argc, argv, false); }
int cmd_cv(int argc, char** argv) { return cmd_train(argc, argv, true); }

int cmd_export(int argc, char** argv) { return sentiment::export_main(argc, argv); }

}  // namespace

int main(int argc, char** argv) {
  return rnnkit::train::run_app(
      "rnnkit-sentiment",
      {{"train", "train a classifier from a TOML config", cmd_fit},
       {"cv", "k-fold cross-validation of the config's recipe on its training data", cmd_cv},
       {"eval",
        "precision, recall, F1 per class, accuracy and the confusion matrix on labelled files",
        cmd_eval},
       {"predict", "the label and class probabilities of each line of a file or of stdin",
        cmd_predict},
       {"export", "the classifier as an ONNX file with its vocabularies as JSON (docs/export.md)",
        cmd_export},
       rnnkit::train::plugin_command_entry(),
       {"config-keys", "the config keys as Markdown tables (as configs/README.md has them)",
        cmd_config_keys}},
      argc, argv);
}

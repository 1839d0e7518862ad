// rnnkit-ner: many-to-many tagging of CoNLL files, scored by entity-level F1.
//
//   rnnkit-ner train   --config configs/ner_wikigold.toml
//   rnnkit-ner eval    --checkpoint runs/ner_wikigold/best.pt --file dev.conll [--json]
//   rnnkit-ner predict --checkpoint runs/ner_wikigold/best.pt [--conll FILE | --file TEXT] [--json]
#include <iostream>

#include <fmt/core.h>

#include <rnnkit/train/cli.h>
#include <rnnkit/train/log.h>
#include <rnnkit/train/signals.h>
#include "ner.h"

namespace {

using namespace rnnkit;

/// The config keys, for train --help and config-keys.
std::vector<std::pair<std::string, train::KeyTable>> config_tables() {
  return {{"[data] and [model]", ner::NerConfig::keys()}, {"[train]", train::TrainOptions::keys()}};
}

int cmd_config_keys(int, char**) { return train::config_keys_command(config_tables()); }

int cmd_train(int argc, char** argv) {
  return train::train_command(argc, argv, "rnnkit-ner train", "Train a tagger", config_tables(),
                              [](train::ConfigReader& config, const train::RunOptions& run) {
                                return train::report_done(run, ner::train(config, run));
                              });
}

int cmd_eval(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-ner eval",
                       "Evaluate a checkpoint on a CoNLL file, as conlleval does");
  train::add_model_options(cli);
  cli.add_options()(
      "file", "CoNLL file with gold tags, in the model's scheme and columns ('-' or none: stdin)",
      cxxopts::value<std::string>())("json", "print one JSON object of metrics on stdout")(
      "h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  const auto run = train::run_options(args, "");
  const auto device = train::setup_runtime(run, 0);
  auto m = ner::load_model(train::required(args, "checkpoint"), device);
  const auto ev = ner::evaluate(m, train::input_file(args), device);
  if (!args.count("json")) {
    std::cout << ev.report();
    return 0;
  }
  train::Json types = train::Json::object();
  for (const auto& t : ev.by_type()) {
    types[t.type] = {
        {"precision", t.precision}, {"recall", t.recall},       {"f1", t.f1},
        {"gold", t.found_correct},  {"found", t.found_guessed}, {"correct", t.correct}};
  }
  train::Json j{{"f1", ev.f1()},
                {"precision", ev.precision()},
                {"recall", ev.recall()},
                {"accuracy", ev.accuracy()},
                {"tokens", ev.tokens()},
                {"gold", ev.found_correct()},
                {"found", ev.found_guessed()},
                {"correct", ev.correct_chunks()},
                {"types", types}};
  j["autocast"] = run.precision;  // --precision ("fp32": autocast off)
  train::print_json(std::cout, j);
  return 0;
}

/// One JSON object: the text and its entities, with code-point offsets [start, end).
int cmd_predict(int argc, char** argv) {
  cxxopts::Options cli(
      "rnnkit-ner predict",
      "Tag a CoNLL file (--conll), or raw text: one sentence per line of --file or stdin");
  train::add_model_options(cli);
  train::add_input_batch_option(cli);
  cli.add_options()("conll",
                    "CoNLL file: tokens in the model's token column; each line is echoed with the "
                    "predicted tag appended",
                    cxxopts::value<std::string>())(
      "file", "raw text, one sentence per line (default: stdin)", cxxopts::value<std::string>())(
      "json",
      "JSON lines {\"text\", \"entities\": [{\"start\", \"end\", \"type\", \"text\"}]} instead of "
      "CoNLL columns")("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  if (args.count("conll") && args.count("file"))
    throw cxxopts::exceptions::exception("give --conll or --file, not both");
  const auto device = train::setup_runtime(train::run_options(args, ""), 0);
  auto m = ner::load_model(train::required(args, "checkpoint"), device);

  // Sentences as tokens with byte offsets into their text, tagged and written a batch at a time
  // (one line at a time from stdin, so that predict works as a filter in a pipe).
  auto emit = [&](const std::vector<std::string>& texts,
                  const std::vector<std::vector<data::TextToken>>& tokens,
                  const std::vector<std::vector<std::string>>& echo) {
    std::vector<std::vector<std::string>> words;
    for (const auto& t : tokens) {
      words.emplace_back();
      for (const auto& x : t) words.back().push_back(x.text);
    }
    const auto tagged = m.tag_scored(words, device);
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto& internal_i = tagged[i].tags;
      if (args.count("json")) {
        std::cout << train::json_line(ner::entities_json(texts[i], tokens[i], tagged[i], m))
                  << "\n";
        continue;
      }
      const auto tags =
          data::convert_tags(internal_i, m.lexicon.internal_scheme, m.lexicon.input_scheme);
      for (size_t k = 0; k < tags.size(); ++k) {
        std::cout << (echo.empty() ? words[i][k] : echo[i][k])
                  << (echo.empty() || echo[i][k].find('\t') == std::string::npos ? " " : "\t")
                  << m.config.unrename(tags[k]) << "\n";
      }
      std::cout << "\n";
    }
    train::flush_stdout();
  };
  if (args.count("conll")) {
    std::vector<std::string> texts;
    std::vector<std::vector<data::TextToken>> tokens;
    std::vector<std::vector<std::string>> echo;  // CoNLL input: each token's line
    for (const auto& s :
         data::read_conll(args["conll"].as<std::string>(), m.config.conll_options(false))) {
      auto [text, toks] = ner::joined_tokens(s.tokens);
      texts.push_back(text);
      tokens.push_back(std::move(toks));
      echo.push_back(s.lines);
    }
    emit(texts, tokens, echo);
    return 0;
  }
  train::InputBatches input(args, m.config.encoding);
  for (std::vector<std::string> lines; input.next(lines);) {
    std::vector<std::vector<data::TextToken>> tokens;
    for (const auto& line : lines) tokens.push_back(data::tokenize_ptb(line));
    emit(lines, tokens, {});
  }
  return 0;
}

int cmd_export(int argc, char** argv) { return ner::export_main(argc, argv); }

}  // namespace

int main(int argc, char** argv) {
  return rnnkit::train::run_app(
      "rnnkit-ner",
      {{"train", "train a tagger from a TOML config", cmd_train},
       {"eval",
        "conlleval's entity precision, recall and F1 (overall and per type) on a CoNLL file",
        cmd_eval},
       {"predict", "tag a CoNLL file, or raw text (one sentence per line) from a file or stdin",
        cmd_predict},
       {"export", "the tagger as an ONNX file with its vocabularies as JSON (docs/export.md)",
        cmd_export},
       rnnkit::train::plugin_command_entry(),
       {"config-keys", "the config keys as Markdown tables (as configs/README.md has them)",
        cmd_config_keys}},
      argc, argv);
}

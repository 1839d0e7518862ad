// rnnkit-ner: many-to-many tagging of CoNLL files, scored by entity-level F1.
//
//   rnnkit-ner train   --config configs/ner_wikigold.toml
//   rnnkit-ner eval    --checkpoint runs/ner_wikigold/best.pt --file dev.conll [--json]
//   rnnkit-ner predict --checkpoint runs/ner_wikigold/best.pt [--conll FILE | --file TEXT] [--json]
#include <iostream>

#include <fmt/core.h>

#include "../common/cli.h"
#include "ner.h"

namespace {

using namespace rnnkit;

const char* kUsage =
    "usage: rnnkit-ner COMMAND [options]\n"
    "commands:\n"
    "  train    train a tagger from a TOML config\n"
    "  eval     conlleval's entity precision, recall and F1 (overall and per type) on a CoNLL file\n"
    "  predict  tag a CoNLL file, or raw text (one sentence per line) from a file or stdin\n"
    "'rnnkit-ner COMMAND --help' lists a command's options.\n";

int cmd_train(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-ner train", "Train a tagger");
  app::add_train_options(cli);
  cli.add_options()("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  auto config = app::load_config(args);
  ner::train(config, app::run_options(args, app::default_run_dir(config.path())));
  return 0;
}

int cmd_eval(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-ner eval", "Evaluate a checkpoint on a CoNLL file, as conlleval does");
  app::add_model_options(cli);
  cli.add_options()
      ("file", "CoNLL file with gold tags, in the model's scheme and columns", cxxopts::value<std::string>())
      ("json", "print one JSON object of metrics on stdout")
      ("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  const auto device = app::setup_runtime(app::run_options(args, ""), 0);
  auto m = ner::load_model(app::required(args, "checkpoint"), device);
  const auto ev = ner::evaluate(m, app::required(args, "file"), device);
  if (!args.count("json")) {
    std::cout << ev.report();
    return 0;
  }
  app::JsonObject types;
  for (const auto& t : ev.by_type()) {
    types.add_raw(t.type, app::JsonObject().add("precision", t.precision).add("recall", t.recall).add("f1", t.f1)
                              .add("gold", t.found_correct).add("found", t.found_guessed).add("correct", t.correct).str());
  }
  std::cout << app::JsonObject().add("f1", ev.f1()).add("precision", ev.precision()).add("recall", ev.recall())
                   .add("accuracy", ev.accuracy()).add("tokens", ev.tokens()).add("gold", ev.found_correct())
                   .add("found", ev.found_guessed()).add("correct", ev.correct_chunks())
                   .add_raw("types", types.str()).str() << "\n";
  return 0;
}

/// One JSON line: the text and its entities, with code-point offsets [start, end).
std::string json_line(const std::string& text, const std::vector<ner::TextToken>& tokens,
                      const std::vector<std::string>& internal_tags, const ner::Loaded& m) {
  std::string entities = "[";
  for (const auto& s : data::tags_to_spans(internal_tags, m.lexicon.internal_scheme)) {
    const size_t b = tokens[s.start].begin, e = tokens[s.end - 1].end;
    entities += (entities.size() > 1 ? ", " : "") +
                app::JsonObject().add("start", static_cast<int64_t>(ner::code_point_offset(text, b)))
                    .add("end", static_cast<int64_t>(ner::code_point_offset(text, e)))
                    .add("type", s.type).add("text", text.substr(b, e - b)).str();
  }
  return app::JsonObject().add("text", text).add_raw("entities", entities + "]").str();
}

int cmd_predict(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-ner predict",
                       "Tag a CoNLL file (--conll), or raw text: one sentence per line of --file or stdin");
  app::add_model_options(cli);
  cli.add_options()
      ("conll", "CoNLL file: tokens in the model's token column; each line is echoed with the predicted tag appended",
       cxxopts::value<std::string>())
      ("file", "raw text, one sentence per line (default: stdin)", cxxopts::value<std::string>())
      ("json", "JSON lines {\"text\", \"entities\": [{\"start\", \"end\", \"type\", \"text\"}]} instead of CoNLL columns")
      ("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  if (args.count("conll") && args.count("file")) throw cxxopts::exceptions::exception("give --conll or --file, not both");
  const auto device = app::setup_runtime(app::run_options(args, ""), 0);
  auto m = ner::load_model(app::required(args, "checkpoint"), device);

  // Sentences as tokens with byte offsets into their text.
  std::vector<std::string> texts;
  std::vector<std::vector<ner::TextToken>> tokens;
  std::vector<std::vector<std::string>> echo;  // CoNLL input: each token's line
  if (args.count("conll")) {
    for (const auto& s : data::read_conll(args["conll"].as<std::string>(), m.config.conll_options(false))) {
      std::string text;
      std::vector<ner::TextToken> toks;
      for (const auto& t : s.tokens) {
        if (!text.empty()) text += " ";
        toks.push_back({t, text.size(), text.size() + t.size()});
        text += t;
      }
      texts.push_back(text);
      tokens.push_back(std::move(toks));
      echo.push_back(s.lines);
    }
  } else {
    for (const auto& line : app::read_input_lines(args, m.config.encoding)) {
      texts.push_back(line);
      tokens.push_back(ner::tokenize_text(line));
    }
  }
  std::vector<std::vector<std::string>> words;
  for (const auto& t : tokens) {
    words.emplace_back();
    for (const auto& x : t) words.back().push_back(x.text);
  }
  const auto internal = m.tag_internal(words, device);
  for (size_t i = 0; i < texts.size(); ++i) {
    if (args.count("json")) {
      std::cout << json_line(texts[i], tokens[i], internal[i], m) << "\n";
      continue;
    }
    const auto tags = data::convert_tags(internal[i], m.lexicon.internal_scheme, m.lexicon.input_scheme);
    for (size_t k = 0; k < tags.size(); ++k) {
      std::cout << (echo.empty() ? words[i][k] : echo[i][k]) << (echo.empty() || echo[i][k].find('\t') == std::string::npos ? " " : "\t")
                << m.config.unrename(tags[k]) << "\n";
    }
    std::cout << "\n";
  }
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "train") return cmd_train(argc - 1, argv + 1);
  if (cmd == "eval") return cmd_eval(argc - 1, argv + 1);
  if (cmd == "predict") return cmd_predict(argc - 1, argv + 1);
  std::cerr << "rnnkit-ner: unknown command '" << cmd << "'\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) { return rnnkit::app::guarded_main("rnnkit-ner", run, argc, argv); }

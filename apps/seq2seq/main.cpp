// rnnkit-seq2seq: the encoder-decoder with attention (translation; docs/seq2seq.md).
//
//   rnnkit-seq2seq train     --config configs/seq2seq_multi30k_de_en.toml [--set ...] [--run-dir D]
//   rnnkit-seq2seq translate --checkpoint D/best.pt [--file F] [--beam 5] [--alpha 1.0] [--json]
//   rnnkit-seq2seq eval      --checkpoint D/best.pt --source F --reference F [--beam 5] [--json]
//   rnnkit-seq2seq bleu      --hypothesis F --reference F [--kind multi-bleu|sacrebleu]
#include <cmath>
#include <iostream>

#include <fmt/core.h>

#include <rnnkit/train/cli.h>
#include <rnnkit/train/log.h>
#include "seq2seq.h"

namespace {

using namespace rnnkit;

std::vector<std::pair<std::string, train::KeyTable>> config_tables() {
  return {{"[data], [model] and the app's [train] keys", seq2seq::Seq2SeqConfig::keys()},
          {"[train]", train::TrainOptions::keys()}};
}

int cmd_config_keys(int, char**) { return train::config_keys_command(config_tables()); }

int cmd_train(int argc, char** argv) {
  return train::train_command(argc, argv, "rnnkit-seq2seq train",
                              "Train an encoder-decoder with attention", config_tables(),
                              [](train::ConfigReader& config, const train::RunOptions& run) {
                                return train::report_done(run, seq2seq::train(config, run));
                              });
}

std::vector<std::string> read_lines(const std::string& path, data::Encoding encoding) {
  data::LineReader in(path, encoding);
  std::vector<std::string> out;
  for (std::string line; in.next(line);) out.push_back(std::move(line));
  return out;
}

void add_decoding_options(cxxopts::Options& cli) {
  cli.add_options("decoding")("beam", "beam size (1: greedy)",
                              cxxopts::value<int64_t>()->default_value("5"))(
      "alpha", "length normalisation: a hypothesis scores log p / length^alpha (0: none)",
      cxxopts::value<std::string>()->default_value("1.0"))(
      "max-length-factor", "at most this many times the source's tokens are written",
      cxxopts::value<double>()->default_value("3"))(
      "max-length", "and at most this many tokens (1..10000)",
      cxxopts::value<int64_t>()->default_value("256"))(
      "max-source-length", "a source line with more tokens is an error naming it",
      cxxopts::value<int64_t>()->default_value("1000"))("allow-unk", "let <unk> be written");
}

/// A number option read as text, so that "nan" or "1e999" gets this app's message naming the
/// flag rather than cxxopts' parse error.
double number_option(const cxxopts::ParseResult& args, const std::string& name) {
  const std::string text = args[name].as<std::string>();
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  if (text == "nan" || text == "NaN" || text == "inf") return std::nan("");
  throw cxxopts::exceptions::exception("--" + name + " must be a number, got '" + text + "'");
}

seq2seq::TranslateOptions decoding_options(const cxxopts::ParseResult& args) {
  seq2seq::TranslateOptions o;
  o.beam = args["beam"].as<int64_t>();
  o.alpha = number_option(args, "alpha");
  o.max_length_factor = args["max-length-factor"].as<double>();
  o.max_length = args["max-length"].as<int64_t>();
  o.allow_unk = args.count("allow-unk") > 0;
  if (args.count("n-best")) o.n_best = args["n-best"].as<int64_t>();
  try {
    seq2seq::check_translate_options(o);
  } catch (const std::invalid_argument& e) {
    throw cxxopts::exceptions::exception(e.what());
  }
  const int64_t most = args["max-source-length"].as<int64_t>();
  if (most < 1 || most > seq2seq::kMostOutputTokens)
    throw cxxopts::exceptions::exception("--max-source-length must be in 1.." +
                                         std::to_string(seq2seq::kMostOutputTokens) + ", got " +
                                         std::to_string(most));
  return o;
}

int cmd_translate(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-seq2seq translate",
                       "Translate each line of a file or of stdin, one output line per input line");
  train::add_model_options(cli);
  train::add_input_batch_option(cli);
  add_decoding_options(cli);
  cli.add_options()("file", "sentences to translate (default: stdin)",
                    cxxopts::value<std::string>())(
      "n-best", "write the K best hypotheses of each line as 'LINE ||| TEXT ||| SCORE'",
      cxxopts::value<int64_t>())("json",
                                 "one JSON object per line: hypotheses, scores, tokens, attention")(
      "plot-attention", "write DIR/N.png, the attention of line N (gnuplot)",
      cxxopts::value<std::string>())("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  auto o = decoding_options(args);
  const bool json = args.count("json") > 0, nbest = args.count("n-best") > 0;
  const std::string plot =
      args.count("plot-attention") ? args["plot-attention"].as<std::string>() : "";
  o.keep_attention = json || !plot.empty();
  const int64_t most = args["max-source-length"].as<int64_t>();
  const auto device = train::setup_runtime(train::run_options(args, ""), 0);
  auto m = seq2seq::load_model(train::required(args, "checkpoint"), device);
  train::InputBatches input(args, m.config.encoding);
  size_t n = 0;
  for (std::vector<std::string> lines; input.next(lines);) {
    std::vector<std::vector<std::string>> sources;
    for (size_t i = 0; i < lines.size(); ++i) {
      sources.push_back(m.config.tokenize_line(lines[i]));
      if (static_cast<int64_t>(sources.back().size()) > most)
        throw input.line_error(i, fmt::format("{} tokens, more than --max-source-length {}",
                                              sources.back().size(), most));
    }
    const auto out = seq2seq::translate(m, sources, o);
    for (const auto& t : out) {
      if (json) {
        auto j = seq2seq::translation_json(m, t, true);
        j["line"] = n + 1;
        train::print_json(std::cout, j);
      } else if (nbest) {
        for (size_t k = 0; k < t.hypotheses.size(); ++k)
          std::cout << n << " ||| " << t.text(m, k) << " ||| "
                    << fmt::format("{:.6f}", t.hypotheses[k].score) << "\n";
      } else {
        std::cout << t.text(m) << "\n";
      }
      if (!plot.empty()) seq2seq::plot_attention(m, t, plot, n + 1);
      ++n;
    }
    train::flush_stdout();
  }
  return 0;
}

int cmd_eval(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-seq2seq eval",
                       "BLEU of a checkpoint's translations, and the references' perplexity");
  train::add_model_options(cli);
  add_decoding_options(cli);
  cli.add_options()("source", "sentences to translate", cxxopts::value<std::string>())(
      "reference", "their reference translations, line by line", cxxopts::value<std::string>())(
      "bleu", "multi-bleu (tokenized text, as the Multi30k papers) or sacrebleu (13a, detokenized)",
      cxxopts::value<std::string>()->default_value("multi-bleu"))(
      "lowercase", "BLEU on lowercased text")("json", "one JSON object on stdout")("h,help",
                                                                                   "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  const auto o = decoding_options(args);
  const std::string kind = args["bleu"].as<std::string>();
  if (kind != "multi-bleu" && kind != "sacrebleu")
    throw cxxopts::exceptions::exception("--bleu must be multi-bleu or sacrebleu, got '" + kind +
                                         "'");
  const std::string source = train::required(args, "source"),
                    reference = train::required(args, "reference");
  const int64_t most = args["max-source-length"].as<int64_t>();
  const auto device = train::setup_runtime(train::run_options(args, ""), 0);
  auto m = seq2seq::load_model(train::required(args, "checkpoint"), device);
  const auto src_lines = read_lines(source, m.config.encoding);
  const auto ref_lines = read_lines(reference, m.config.encoding);
  if (src_lines.size() != ref_lines.size())
    throw data::DataError(reference, 0,
                          fmt::format("{} lines, but {} has {}: expected one reference per line",
                                      ref_lines.size(), source, src_lines.size()));
  std::vector<std::vector<std::string>> src, ref;
  for (size_t i = 0; i < src_lines.size(); ++i) {
    src.push_back(m.config.tokenize_line(src_lines[i]));
    if (static_cast<int64_t>(src.back().size()) > most)
      throw data::DataError(
          source, i + 1,
          fmt::format("{} tokens, more than --max-source-length {}", src.back().size(), most));
    ref.push_back(m.config.tokenize_line(ref_lines[i]));
  }
  const auto out = seq2seq::translate(m, src, o);
  std::vector<std::string> hyps, refs;
  for (size_t i = 0; i < out.size(); ++i) {
    if (kind == "sacrebleu") {
      hyps.push_back(out[i].text(m));
      refs.push_back(ref_lines[i]);
    } else {
      hyps.push_back(m.config.bleu_text(m.lexicon.target.decode(out[i].hypotheses.at(0).tokens)));
      refs.push_back(m.config.bleu_text(ref[i]));
    }
  }
  // Exact match: the whole translation right, compared as BLEU compares (what training's
  // val_exact counts); for the dates demo the measure that matters.
  int64_t exact = 0;
  for (size_t i = 0; i < hyps.size(); ++i) exact += hyps[i] == refs[i];
  const double exact_rate =
      hyps.empty() ? 0.0 : static_cast<double>(exact) / static_cast<double>(hyps.size());
  auto bleu = seq2seq::corpus_bleu(hyps, refs, kind, args.count("lowercase") > 0);
  if (kind == "multi-bleu" && m.config.tokenize == "char")
    bleu.kind = m.config.bleu_label() + (args.count("lowercase") ? "-lc" : "");
  int64_t tokens = 0;
  const double loss = seq2seq::teacher_forced_loss(*m.model, m.lexicon, src, ref, device, &tokens);
  if (args.count("json")) {
    train::print_json(std::cout, {{"bleu", bleu.bleu},
                                  {"bleu_kind", bleu.kind},
                                  {"hyp_len", bleu.hyp_len},
                                  {"ref_len", bleu.ref_len},
                                  {"precisions", bleu.precisions},
                                  {"brevity_penalty", bleu.brevity_penalty},
                                  {"perplexity", std::exp(loss)},
                                  {"exact", exact_rate},
                                  {"sentences", out.size()},
                                  {"beam", o.beam},
                                  {"alpha", o.alpha}});
  } else {
    std::cout << fmt::format(
        "{}: BLEU {:.2f} ({}), {:.1f}/{:.1f}/{:.1f}/{:.1f}, BP {:.3f}, hyp_len {}, ref_len {}, "
        "beam {}, alpha {}; reference perplexity {:.2f}; exact match {:.1f}% ({} of {})\n",
        source, bleu.bleu, bleu.kind, bleu.precisions[0], bleu.precisions[1], bleu.precisions[2],
        bleu.precisions[3], bleu.brevity_penalty, bleu.hyp_len, bleu.ref_len, o.beam, o.alpha,
        std::exp(loss), 100 * exact_rate, exact, hyps.size());
  }
  return 0;
}

int cmd_bleu(int argc, char** argv) {
  cxxopts::Options cli("rnnkit-seq2seq bleu", "Corpus BLEU of a file of hypotheses");
  cli.add_options()("hypothesis", "one translation per line ('-': stdin)",
                    cxxopts::value<std::string>()->default_value("-"))(
      "reference", "one reference per line", cxxopts::value<std::string>())(
      "kind", "multi-bleu (whitespace tokens) or sacrebleu (13a tokenizer, exp smoothing)",
      cxxopts::value<std::string>()->default_value("multi-bleu"))(
      "lowercase", "compare lowercased text")("json", "one JSON object on stdout")("h,help",
                                                                                   "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  const std::string kind = args["kind"].as<std::string>();
  if (kind != "multi-bleu" && kind != "sacrebleu")
    throw cxxopts::exceptions::exception("--kind must be multi-bleu or sacrebleu, got '" + kind +
                                         "'");
  const std::string hyp_path = args["hypothesis"].as<std::string>();
  const std::string ref_path = train::required(args, "reference");
  const auto hyps = read_lines(hyp_path, data::Encoding::kUtf8);
  const auto refs = read_lines(ref_path, data::Encoding::kUtf8);
  if (hyps.size() != refs.size())
    throw data::DataError(ref_path, 0,
                          fmt::format("{} lines, but the hypotheses have {}: expected one "
                                      "reference per line",
                                      refs.size(), hyps.size()));
  const auto b = seq2seq::corpus_bleu(hyps, refs, kind, args.count("lowercase") > 0);
  if (args.count("json")) {
    train::print_json(std::cout, {{"bleu", b.bleu},
                                  {"bleu_kind", b.kind},
                                  {"hyp_len", b.hyp_len},
                                  {"ref_len", b.ref_len},
                                  {"precisions", b.precisions},
                                  {"brevity_penalty", b.brevity_penalty}});
  } else {
    std::cout << fmt::format(
        "BLEU = {:.2f}, {:.1f}/{:.1f}/{:.1f}/{:.1f} (BP={:.3f}, hyp_len={}, "
        "ref_len={}) {}\n",
        b.bleu, b.precisions[0], b.precisions[1], b.precisions[2], b.precisions[3],
        b.brevity_penalty, b.hyp_len, b.ref_len, b.kind);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return rnnkit::train::run_app(
      "rnnkit-seq2seq",
      {{"train", "train an encoder-decoder from a TOML config", cmd_train},
       {"translate", "translate each line of a file or of stdin (greedy or beam search)",
        cmd_translate},
       {"eval", "BLEU of a checkpoint on a source file against its references", cmd_eval},
       {"bleu", "corpus BLEU of a hypothesis file (multi-bleu or sacreBLEU's 13a)", cmd_bleu},
       rnnkit::train::plugin_command_entry(),
       {"config-keys", "the config keys as Markdown tables (as configs/README.md has them)",
        cmd_config_keys}},
      argc, argv);
}

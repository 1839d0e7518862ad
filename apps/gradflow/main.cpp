// rnnkit-gradflow: vanishing and exploding gradients, and what gates and clipping do.
//
//   rnnkit-gradflow norms     --config configs/gradflow.toml [--out runs/gradflow]
//   rnnkit-gradflow agreement --config configs/gradflow.toml
//   rnnkit-gradflow explode   --config configs/gradflow.toml
//   rnnkit-gradflow all       --config configs/gradflow.toml
// Each writes a CSV and a PNG (gnuplot) to --out and prints a table.
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include <fmt/core.h>

#include <rnnkit/registry.h>
#include <rnnkit/train/cli.h>
#include <rnnkit/train/system.h>

#include "gradflow.h"

namespace {

using namespace rnnkit;
namespace fs = std::filesystem;

/// "cell[:init][:fb=X]", e.g. "lstm:fb=1", "rnn:orthogonal".
gradflow::CellSetup parse_setup(const std::string& spec, const std::string& where) {
  gradflow::CellSetup s;
  std::string rest = spec;
  size_t colon = rest.find(':');
  s.rnn.cell(rest.substr(0, colon));
  if (!has_cell(s.rnn.cell()))
    throw train::ConfigError(where + ": unknown cell '" + s.rnn.cell() + "' in '" + spec + "'");
  while (colon != std::string::npos) {
    rest = rest.substr(colon + 1);
    colon = rest.find(':');
    const std::string part = rest.substr(0, colon);
    if (part.rfind("fb=", 0) == 0) {
      size_t used = 0;
      double fb = NAN;
      try {
        fb = std::stod(part.substr(3), &used);
      } catch (const std::exception&) {
      }
      // The apps' range for forget_bias: NaN or infinity would only write -nan CSVs.
      if (used == 0 || used != part.size() - 3 || !std::isfinite(fb) || fb < -100 || fb > 100) {
        throw train::ConfigError(where +
                                 ": expected fb=NUMBER with the number in [-100, 100], got '" +
                                 part + "' in '" + spec + "'");
      }
      s.rnn.forget_bias(fb);
    } else {
      try {
        s.rnn.init(parse_init(part));
      } catch (const c10::Error&) {
        throw train::ConfigError(
            where + ": expected an init (uniform, xavier, he, orthogonal) or fb=X, got '" + part +
            "' in '" + spec + "'");
      }
    }
  }
  return s;
}

std::vector<gradflow::CellSetup> setups(train::ConfigReader& c, const std::string& section) {
  std::vector<gradflow::CellSetup> out;
  for (const auto& spec : c.get_string_list(section, "cells"))
    out.push_back(parse_setup(spec, c.where(section, "cells")));
  if (out.empty()) throw train::ConfigError(c.path() + ": [" + section + "] needs cells");
  return out;
}

/// Plots columns first..last of a CSV against column 1 with gnuplot (the script on its stdin);
/// says so if gnuplot is missing or fails, and only then that the CSV alone is written.
void plot(const std::string& csv, const std::string& png, const std::string& title,
          const std::string& xlabel, const std::string& ylabel, bool logy, int last_column,
          int first_column = 2) {
  // gnuplot strings in single quotes: a quote inside is doubled.
  auto quoted = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
  };
  std::string script =
      "set terminal pngcairo size 900,560 noenhanced\nset output " + quoted(png) + "\n" +
      "set datafile separator ','\nset key outside right\nset grid\n" +
      (logy ? "set logscale y\nset format y '1e%T'\n" : "set yrange [0.4:1.02]\n") + "set title " +
      quoted(title) + "\nset xlabel " + quoted(xlabel) + "\nset ylabel " + quoted(ylabel) + "\n" +
      "plot for [c=" + std::to_string(first_column) + ":" + std::to_string(last_column) + "] " +
      quoted(csv) + " using 1:c with linespoints title columnheader(c)\n";
  FILE* gp = ::popen("gnuplot 2>/dev/null", "w");
  int status = -1;
  if (gp) {
    const bool written = std::fwrite(script.data(), 1, script.size(), gp) == script.size();
    status = ::pclose(gp);
    if (!written) status = -1;
  }
  if (status != 0 || !fs::exists(png)) {
    // popen runs sh: 127 is "command not found", anything else is gnuplot's own failure.
    const bool missing = status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 127);
    std::cerr << "rnnkit-gradflow: "
              << (missing ? "gnuplot is missing (scripts/setup.sh installs it)"
                          : "gnuplot failed (exit status " +
                                std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                                ") on " + csv)
              << "; " << csv << " is written, " << png << " is not\n";
  } else {
    std::cerr << "wrote " << png << "\n";
  }
}

struct NormsConfig {
  std::vector<gradflow::CellSetup> cells;
  int64_t T, B, D, H;
  uint64_t seed;
  static NormsConfig read(train::ConfigReader& c) {
    return {setups(c, "norms"),
            c.get_int("norms", "T", 100, 2, 100000),
            c.get_int("norms", "batch", 16, 1, 65536),
            c.get_int("norms", "input_size", 8, 1, 65536),
            c.get_int("norms", "hidden_size", 64, 1, 65536),
            static_cast<uint64_t>(c.get_int("norms", "seed", 1, 0))};
  }
};

void run_norms(const NormsConfig& n, const std::string& out) {
  const auto& cells = n.cells;
  const int64_t T = n.T, B = n.B, D = n.D, H = n.H;
  const uint64_t seed = n.seed;
  std::vector<gradflow::GradNorms> g;
  for (const auto& s : cells) g.push_back(gradflow::gradient_norms(s, T, B, D, H, seed));
  for (const std::string which : {"a", "x"}) {
    const std::string csv = out + "/grad_norms_d" + which + ".csv";
    train::OutputFile f(csv);
    f << "t";
    for (const auto& s : cells) f << "," << s.label();
    f << "\n";
    for (int64_t t = 0; t < T; ++t) {
      f << t + 1;
      for (const auto& n : g) f << "," << fmt::format("{:.6g}", which == "a" ? n.da[t] : n.dx[t]);
      f << "\n";
    }
    f.close();
    std::cerr << "wrote " << csv << "\n";
    plot(csv, out + "/grad_norms_d" + which + ".png",
         fmt::format("||dL/d{}<t>||, L on the last step only (T = {})", which, T), "t",
         "gradient norm (log scale)", true, static_cast<int>(cells.size()) + 1);
  }
  std::cout << fmt::format("||dL/da<t>||, L = r . a<T> (T = {}, seed {}):\n{:>6}", T, seed, "t");
  for (const auto& s : cells) std::cout << fmt::format(" {:>26}", s.label());
  std::cout << "\n";
  for (int64_t t : {int64_t{1}, T / 10, T / 4, T / 2, 3 * T / 4, T - 1, T}) {
    std::cout << fmt::format("{:>6}", t);
    for (const auto& n : g) std::cout << fmt::format(" {:>26.3e}", n.da[t - 1]);
    std::cout << "\n";
  }
}

struct AgreementConfig {
  std::vector<gradflow::CellSetup> cells;
  std::vector<int64_t> gaps;
  gradflow::AgreementOptions o;
  static AgreementConfig read(train::ConfigReader& c) {
    AgreementConfig a;
    a.cells = setups(c, "agreement");
    a.gaps = c.get_int_list("agreement", "gaps", {2, 5, 10, 20, 40}, 0, 100000);
    auto& o = a.o;
    o.hidden_size = c.get_int("agreement", "hidden_size", o.hidden_size, 1, 65536);
    o.embedding_size = c.get_int("agreement", "embedding_size", o.embedding_size, 1, 65536);
    o.steps = c.get_int("agreement", "steps", o.steps, 1, 100000000);
    o.batch_size = c.get_int("agreement", "batch_size", o.batch_size, 1, 65536);
    o.learning_rate = c.get_double("agreement", "learning_rate", o.learning_rate, 1e-6, 10);
    o.clip_norm = c.get_double("agreement", "clip_norm", o.clip_norm, 0, 1e9);
    o.seed = static_cast<uint64_t>(c.get_int("agreement", "seed", 1, 0));
    return a;
  }
};

void run_agreement(const AgreementConfig& a, const std::string& out) {
  const auto& cells = a.cells;
  const auto& gaps = a.gaps;
  const auto& o = a.o;
  const std::string csv = out + "/agreement.csv";
  train::OutputFile f(csv);
  f << "gap";
  for (const auto& s : cells) f << "," << s.label();
  f << "\n";
  std::cout << fmt::format("number agreement, accuracy after {} steps (chance: 0.5):\n{:>6}",
                           o.steps, "gap");
  for (const auto& s : cells) std::cout << fmt::format(" {:>24}", s.label());
  std::cout << "\n";
  for (const auto gap : gaps) {
    f << gap;
    std::cout << fmt::format("{:>6}", gap);
    for (const auto& s : cells) {
      const double acc = gradflow::agreement_accuracy(s, gap, o);
      f << "," << fmt::format("{:.4f}", acc);
      std::cout << fmt::format(" {:>24.3f}", acc) << std::flush;
    }
    f << "\n";
    std::cout << "\n";
  }
  f.close();
  std::cerr << "wrote " << csv << "\n";
  plot(csv, out + "/agreement.png", fmt::format("number agreement after {} Adam steps", o.steps),
       "gap (filler words between subject and verb)", "accuracy", false,
       static_cast<int>(cells.size()) + 1);
}

struct ExplodeConfig {
  gradflow::ExplodeOptions o;
  double clip_norm, clip_value;
  static ExplodeConfig read(train::ConfigReader& c) {
    ExplodeConfig e;
    auto& o = e.o;
    o.T = c.get_int("explode", "T", o.T, 1, 100000);
    o.hidden_size = c.get_int("explode", "hidden_size", o.hidden_size, 1, 65536);
    o.steps = c.get_int("explode", "steps", o.steps, 1, 100000000);
    o.batch_size = c.get_int("explode", "batch_size", o.batch_size, 1, 65536);
    o.scale = c.get_double("explode", "scale", o.scale, 0, 100);
    o.learning_rate = c.get_double("explode", "learning_rate", o.learning_rate, 1e-9, 100);
    e.clip_norm = c.get_double("explode", "clip_norm", 1.0, 1e-9, 1e9);
    e.clip_value = c.get_double("explode", "clip_value", 0.1, 1e-9, 1e9);
    o.seed = static_cast<uint64_t>(c.get_int("explode", "seed", 1, 0));
    return e;
  }
};

void run_explode(const ExplodeConfig& e, const std::string& out) {
  const auto& o = e.o;
  const double clip_norm = e.clip_norm, clip_value = e.clip_value;
  struct Run {
    std::string name;
    gradflow::ExplodeTrace t;
  };
  std::vector<Run> runs;
  runs.push_back({"no clipping", gradflow::explode(o)});
  auto on = o;
  on.clip_norm = clip_norm;
  runs.push_back({fmt::format("clip by norm {:g}", clip_norm), gradflow::explode(on)});
  auto ov = o;
  ov.clip_value = clip_value;
  runs.push_back({fmt::format("clip by value {:g}", clip_value), gradflow::explode(ov)});
  const std::string csv = out + "/explode.csv";
  train::OutputFile f(csv);
  f << "step";
  for (const auto& r : runs) f << "," << r.name << " (gradient norm)";
  for (const auto& r : runs) f << "," << r.name << " (loss)";
  f << "\n";
  const int n = static_cast<int>(runs.size());
  for (int64_t s = 0; s < o.steps; ++s) {
    f << s + 1;
    for (int k = 0; k < 2 * n; ++k) {
      const auto& t = runs[k % n].t;
      const auto& v = k < n ? t.norm_before : t.loss;
      f << ",";
      if (s < static_cast<int64_t>(v.size()) && std::isfinite(v[s]))
        f << fmt::format("{:.6g}", v[s]);
    }
    f << "\n";
  }
  f.close();
  std::cerr << "wrote " << csv << "\n";
  const std::string title =
      fmt::format("relu RNN, recurrent init {:g} x orthogonal, T = {}, SGD", o.scale, o.T);
  plot(csv, out + "/explode_norm.png", title, "step", "gradient norm before clipping (log scale)",
       true, 1 + n);
  plot(csv, out + "/explode_loss.png", title, "step", "training loss (log scale)", true, 1 + 2 * n,
       2 + n);
  for (const auto& r : runs) {
    double max_after = 0;
    for (double n : r.t.norm_after) max_after = std::max(max_after, n);
    std::cout << fmt::format(
        "{:>20}: {}; largest gradient norm before clipping {:.3g}, after {:.3g}; last loss "
        "{:.4g}\n",
        r.name,
        r.t.diverged_at >= 0 ? fmt::format("diverged at step {}", r.t.diverged_at + 1)
                             : fmt::format("finite for {} steps", r.t.loss.size()),
        *std::max_element(r.t.norm_before.begin(), r.t.norm_before.end()), max_after,
        r.t.loss.back());
  }
}

/// argv[0] is the command (norms, agreement, explode or all).
int run(int argc, char** argv) {
  const std::string cmd = argv[0];
  const bool all = cmd == "all";
  cxxopts::Options cli("rnnkit-gradflow " + cmd, "Vanishing and exploding gradients, measured");
  cli.add_options()("config", "TOML config (configs/gradflow.toml)", cxxopts::value<std::string>())(
      "set", "override a config value: section.key=value",
      cxxopts::value<std::vector<std::string>>())(
      "out", "folder for the CSVs and PNGs",
      cxxopts::value<std::string>()->default_value("runs/gradflow"))(
      "threads", "CPU threads (0: the cores this process may use)",
      cxxopts::value<int>()->default_value("0"))("h,help", "this help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  auto config = train::load_config(args);
  const std::string out = args["out"].as<std::string>();
  at::set_num_threads(train::resolve_threads(args["threads"].as<int>()));
  // The sections this command runs must be there; the others are checked only if present, so a
  // typo fails before any experiment runs and `norms` does not need [agreement].
  const bool do_norms = all || cmd == "norms", do_agree = all || cmd == "agreement",
             do_explode = all || cmd == "explode";
  std::optional<NormsConfig> norms;
  std::optional<AgreementConfig> agreement;
  std::optional<ExplodeConfig> explode;
  if (do_norms || config.has_section("norms")) norms = NormsConfig::read(config);
  if (do_agree || config.has_section("agreement")) agreement = AgreementConfig::read(config);
  if (do_explode || config.has_section("explode")) explode = ExplodeConfig::read(config);
  config.reject_unknown_keys();
  // The folder is made now, and removed again if this call fails before writing anything in it.
  const bool existed = fs::exists(out);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out)) {
    throw train::IoError("cannot create the output folder " + out + ": " +
                         (ec ? ec.message() : std::string("a file of that name exists")));
  }
  try {
    if (do_norms) run_norms(*norms, out);
    if (do_agree) run_agreement(*agreement, out);
    if (do_explode) run_explode(*explode, out);
  } catch (...) {
    if (!existed && fs::is_empty(out, ec)) fs::remove(out, ec);
    throw;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return rnnkit::train::run_app(
      "rnnkit-gradflow",
      {{"norms", "||dL/da<t>|| and ||dL/dx<t>|| back through time, per cell ([norms])", run},
       {"agreement", "number agreement across growing gaps: which cells learn it ([agreement])",
        run},
       {"explode", "a relu RNN made to explode, without and with clipping ([explode])", run},
       {"all", "the three, in that order", run}},
      argc, argv);
}

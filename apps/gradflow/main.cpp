// rnnkit-gradflow: vanishing and exploding gradients, and what gates and clipping do.
//
//   rnnkit-gradflow norms     --config configs/gradflow.toml [--out runs/gradflow]
//   rnnkit-gradflow agreement --config configs/gradflow.toml
//   rnnkit-gradflow explode   --config configs/gradflow.toml
//   rnnkit-gradflow all       --config configs/gradflow.toml
// Each writes a CSV and a PNG (gnuplot) to --out and prints a table.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/core.h>

#include "../common/cli.h"
#include <rnnkit/registry.h>

#include "gradflow.h"

namespace {

using namespace rnnkit;
namespace fs = std::filesystem;

/// "cell[:init][:fb=X]", e.g. "lstm:fb=1", "rnn:orthogonal".
gradflow::CellSetup parse_setup(const std::string& spec, const std::string& where) {
  gradflow::CellSetup s;
  std::string rest = spec;
  size_t colon = rest.find(':');
  s.cell = rest.substr(0, colon);
  if (!has_cell(s.cell)) throw app::ConfigError(where + ": unknown cell '" + s.cell + "' in '" + spec + "'");
  while (colon != std::string::npos) {
    rest = rest.substr(colon + 1);
    colon = rest.find(':');
    const std::string part = rest.substr(0, colon);
    if (part.rfind("fb=", 0) == 0) {
      try {
        s.forget_bias = std::stod(part.substr(3));
      } catch (const std::exception&) {
        throw app::ConfigError(where + ": expected fb=NUMBER in '" + spec + "'");
      }
    } else {
      try {
        s.init = parse_init(part);
      } catch (const c10::Error&) {
        throw app::ConfigError(where + ": expected an init (uniform, xavier, he, orthogonal) or fb=X, got '" +
                               part + "' in '" + spec + "'");
      }
    }
  }
  return s;
}

std::vector<gradflow::CellSetup> setups(app::ConfigReader& c, const std::string& section) {
  std::vector<gradflow::CellSetup> out;
  for (const auto& spec : c.get_string_list(section, "cells")) out.push_back(parse_setup(spec, c.where(section, "cells")));
  if (out.empty()) throw app::ConfigError(c.path() + ": [" + section + "] needs cells");
  return out;
}

/// Plots columns first..last of a CSV against column 1 with gnuplot; says so if gnuplot is missing.
void plot(const std::string& csv, const std::string& png, const std::string& title,
          const std::string& xlabel, const std::string& ylabel, bool logy, int last_column,
          int first_column = 2) {
  const std::string script = csv + ".gp";
  std::ofstream gp(script);
  gp << "set terminal pngcairo size 900,560 noenhanced\nset output '" << png << "'\n"
     << "set datafile separator ','\nset key outside right\nset grid\n"
     << (logy ? "set logscale y\nset format y '1e%T'\n" : "set yrange [0.4:1.02]\n")
     << "set title '" << title << "'\nset xlabel '" << xlabel << "'\nset ylabel '" << ylabel << "'\n"
     << "plot for [c=" << first_column << ":" << last_column << "] '" << csv << "' using 1:c with linespoints title columnheader(c)\n";
  gp.close();
  if (std::system(("gnuplot '" + script + "' 2>/dev/null").c_str()) != 0) {
    std::cerr << "rnnkit-gradflow: gnuplot failed or is missing (scripts/setup.sh installs it); " << csv
              << " is written\n";
  } else {
    std::cerr << "wrote " << png << "\n";
  }
}

struct NormsConfig {
  std::vector<gradflow::CellSetup> cells;
  int64_t T, B, D, H;
  uint64_t seed;
  static NormsConfig read(app::ConfigReader& c) {
    return {setups(c, "norms"), c.get_int("norms", "T", 100, 2), c.get_int("norms", "batch", 16, 1),
            c.get_int("norms", "input_size", 8, 1), c.get_int("norms", "hidden_size", 64, 1),
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
    std::ofstream f(csv);
    f << "t";
    for (const auto& s : cells) f << "," << s.label();
    f << "\n";
    for (int64_t t = 0; t < T; ++t) {
      f << t + 1;
      for (const auto& n : g) f << "," << fmt::format("{:.6g}", which == "a" ? n.da[t] : n.dx[t]);
      f << "\n";
    }
    f.close();
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
  static AgreementConfig read(app::ConfigReader& c) {
    AgreementConfig a;
    a.cells = setups(c, "agreement");
    a.gaps = c.get_int_list("agreement", "gaps", {2, 5, 10, 20, 40}, 0);
    auto& o = a.o;
    o.hidden_size = c.get_int("agreement", "hidden_size", o.hidden_size, 1);
    o.embedding_size = c.get_int("agreement", "embedding_size", o.embedding_size, 1);
    o.steps = c.get_int("agreement", "steps", o.steps, 1);
    o.batch_size = c.get_int("agreement", "batch_size", o.batch_size, 1);
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
  std::ofstream f(csv);
  f << "gap";
  for (const auto& s : cells) f << "," << s.label();
  f << "\n";
  std::cout << fmt::format("number agreement, accuracy after {} steps (chance: 0.5):\n{:>6}", o.steps, "gap");
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
  plot(csv, out + "/agreement.png", fmt::format("number agreement after {} Adam steps", o.steps),
       "gap (filler words between subject and verb)", "accuracy", false, static_cast<int>(cells.size()) + 1);
}

struct ExplodeConfig {
  gradflow::ExplodeOptions o;
  double clip_norm, clip_value;
  static ExplodeConfig read(app::ConfigReader& c) {
    ExplodeConfig e;
    auto& o = e.o;
    o.T = c.get_int("explode", "T", o.T, 1);
    o.hidden_size = c.get_int("explode", "hidden_size", o.hidden_size, 1);
    o.steps = c.get_int("explode", "steps", o.steps, 1);
    o.batch_size = c.get_int("explode", "batch_size", o.batch_size, 1);
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
  struct Run { std::string name; gradflow::ExplodeTrace t; };
  std::vector<Run> runs;
  runs.push_back({"no clipping", gradflow::explode(o)});
  auto on = o;
  on.clip_norm = clip_norm;
  runs.push_back({fmt::format("clip by norm {:g}", clip_norm), gradflow::explode(on)});
  auto ov = o;
  ov.clip_value = clip_value;
  runs.push_back({fmt::format("clip by value {:g}", clip_value), gradflow::explode(ov)});
  const std::string csv = out + "/explode.csv";
  std::ofstream f(csv);
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
      if (s < static_cast<int64_t>(v.size()) && std::isfinite(v[s])) f << fmt::format("{:.6g}", v[s]);
    }
    f << "\n";
  }
  f.close();
  const std::string title = fmt::format("relu RNN, recurrent init {:g} x orthogonal, T = {}, SGD", o.scale, o.T);
  plot(csv, out + "/explode_norm.png", title, "step", "gradient norm before clipping (log scale)", true, 1 + n);
  plot(csv, out + "/explode_loss.png", title, "step", "training loss (log scale)", true, 1 + 2 * n, 2 + n);
  for (const auto& r : runs) {
    double max_after = 0;
    for (double n : r.t.norm_after) max_after = std::max(max_after, n);
    std::cout << fmt::format("{:>20}: {}; largest gradient norm before clipping {:.3g}, after {:.3g}; last loss {:.4g}\n",
                             r.name, r.t.diverged_at >= 0 ? fmt::format("diverged at step {}", r.t.diverged_at + 1)
                                                          : fmt::format("finite for {} steps", r.t.loss.size()),
                             *std::max_element(r.t.norm_before.begin(), r.t.norm_before.end()), max_after,
                             r.t.loss.back());
  }
}

int run(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  cxxopts::Options cli("rnnkit-gradflow " + cmd, "Vanishing and exploding gradients, measured");
  cli.add_options()
      ("config", "TOML config (configs/gradflow.toml)", cxxopts::value<std::string>())
      ("set", "override a config value: section.key=value", cxxopts::value<std::vector<std::string>>())
      ("out", "folder for the CSVs and PNGs", cxxopts::value<std::string>()->default_value("runs/gradflow"))
      ("threads", "CPU threads (0: all cores)", cxxopts::value<int>()->default_value("0"))
      ("h,help", "this help");
  if (cmd.empty() || cmd == "--help" || cmd == "-h") {
    std::cout << "usage: rnnkit-gradflow norms|agreement|explode|all --config FILE [--out DIR]\n";
    return cmd.empty() ? 2 : 0;
  }
  const auto args = cli.parse(argc - 1, argv + 1);
  if (args.count("help")) return std::cout << cli.help() << "\n", 0;
  auto config = app::load_config(args);
  const std::string out = args["out"].as<std::string>();
  fs::create_directories(out);
  const int threads = args["threads"].as<int>();
  at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()));
  const bool all = cmd == "all";
  if (!all && cmd != "norms" && cmd != "agreement" && cmd != "explode") {
    throw cxxopts::exceptions::exception("unknown command '" + cmd + "'");
  }
  // Every section is read and checked first, so a typo fails before any experiment runs.
  const auto norms = NormsConfig::read(config);
  const auto agreement = AgreementConfig::read(config);
  const auto explode = ExplodeConfig::read(config);
  config.reject_unknown_keys();
  if (all || cmd == "norms") run_norms(norms, out);
  if (all || cmd == "agreement") run_agreement(agreement, out);
  if (all || cmd == "explode") run_explode(explode, out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return rnnkit::app::guarded_main("rnnkit-gradflow", run, argc, argv); }

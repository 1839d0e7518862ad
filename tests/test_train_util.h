#pragma once
// Helpers for the tests of the training framework and the apps (test_util.h has the library's).
#include <cstdlib>
#include <fstream>
#include <string>

#include <rnnkit/train/train.h>

#include "test_util.h"

namespace rnnkit_test {

/// Run options for a training run inside a test: one thread, no progress output.
inline rnnkit::train::RunOptions quiet_run(const std::string& dir) {
  rnnkit::train::RunOptions r;
  r.run_dir = dir;
  r.quiet = true;
  r.threads = 1;
  return r;
}

/// The training loss of the last epoch in run_dir/metrics.csv (its third column).
inline double last_train_loss(const std::string& run_dir) {
  std::ifstream in(run_dir + "/metrics.csv");
  std::string line, last;
  while (std::getline(in, line)) last = line;
  const auto first = last.find(','), second = last.find(',', first + 1);
  return std::strtod(last.c_str() + second + 1, nullptr);
}

/// The same fixed-seed run of the config file `config` in fp32 and with train.precision = bf16
/// (run dirs dir/fp32 and dir/bf16), and each run's last training loss.
struct PrecisionRuns {
  rnnkit::train::FitResult fp32, bf16;
  double loss32 = 0, loss16 = 0;
};
template <class Train>
PrecisionRuns fp32_and_bf16(Train train, const std::string& config, const std::string& dir) {
  rnnkit::train::ConfigReader c32(config), c16(config, {"train.precision=bf16"});
  PrecisionRuns r;
  r.fp32 = train(c32, quiet_run(dir + "/fp32"));
  r.bf16 = train(c16, quiet_run(dir + "/bf16"));
  r.loss32 = last_train_loss(dir + "/fp32");
  r.loss16 = last_train_loss(dir + "/bf16");
  return r;
}

/// Sentences where capitalised words after "met" or "with" are people and after "in" places,
/// in IOB1 (as CoNLL-2003): B- only between two adjacent entities of one type.
inline std::string toy_conll(int n, int seed) {
  const char* people[] = {"Anna", "Boris", "Chen", "Dara", "Emil", "Fatou", "Goran", "Hiro"};
  const char* places[] = {"Oslo", "Lima", "Accra", "Hanoi", "Quito", "Perth"};
  std::string s = "-DOCSTART- -X- O O\n\n";
  for (int i = 0; i < n; ++i) {
    const int a = (i * 7 + seed) % 8, b = (i * 3 + seed) % 6, c = (i * 5 + 1 + seed) % 8;
    s += std::string("we O\nmet O\n") + people[a] + " I-PER\n" + "Smith I-PER\n" + "in O\n" +
         places[b] + " I-LOC\n";
    if (i % 3 == 0) s += std::string(places[(b + 1) % 6]) + " B-LOC\n";
    s += std::string("with O\n") + people[c] + " I-PER\n. O\n\n";
  }
  return s;
}

/// The tiny character-level LM the framework's and the apps' tests train: `lines` lines of
/// "the cat sat on the mat D" (D = i % digits) in dir/train.txt, their first `valid_chars`
/// characters in dir/valid.txt, and dir/lm.toml over them (returned), with `model` added to its
/// [model] table and `extra` after its [train] table.
struct TinyLm {
  int lines = 40, digits = 5;
  size_t valid_chars = 300;
  int epochs = 1;
  std::string model;
};
inline std::string tiny_lm_config(const std::string& dir, const std::string& extra = "",
                                  const TinyLm& t = {}) {
  std::string text;
  for (int i = 0; i < t.lines; ++i) {
    text += "the cat sat on the mat " + std::to_string(i % t.digits) + "\n";
  }
  write_file(dir, "train.txt", text);
  write_file(dir, "valid.txt", text.substr(0, t.valid_chars));
  return write_file(dir, "lm.toml",
                    "[data]\nlevel = \"char\"\ntrain = \"train.txt\"\nvalid = \"valid.txt\"\n"
                    "bptt = 8\n[model]\ncell = \"lstm\"\nembedding_size = 8\nhidden_size = 16\n" +
                        t.model + "[train]\nepochs = " + std::to_string(t.epochs) +
                        "\nbatch_size = 4\nlearning_rate = 0.01\nseed = 3\n" + extra);
}
/// The apps' tests' variant: 60 lines of 7 digits, 400 validation characters, two epochs.
inline TinyLm apps_tiny_lm(std::string model = "") { return {60, 7, 400, 2, std::move(model)}; }

}  // namespace rnnkit_test

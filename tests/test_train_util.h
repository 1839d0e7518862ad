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

}  // namespace rnnkit_test

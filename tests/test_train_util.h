#pragma once
// Helpers for the tests of the training framework and the apps (test_util.h has the library's).
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

}  // namespace rnnkit_test

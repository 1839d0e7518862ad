#pragma once
// The recurrent part of every app's [model] section, read one way: which cell, how wide and
// deep, recurrent dropout, initialisation and forget-gate bias (an optional, unset by default:
// the init's own bias).
#include <cstdint>
#include <string>

#include <rnnkit/compat.h>
#include <rnnkit/init.h>
#include <rnnkit/registry.h>

#include "config.h"

namespace rnnkit::train {

struct RecurrentSpec {
  std::string cell = "lstm";
  int64_t hidden_size = 128, num_layers = 1;
  double recurrent_dropout = 0;  ///< variational dropout on a<t-1>, one mask per sequence
  Init init = Init::kUniform;
  optional<double> forget_bias{};  ///< gated cells; unset: the init's own
  CellOptions cell_options{};      ///< the cell's own options, as given ([model.cell_options])

  /// Reads cell, cell_options, hidden_size, num_layers, recurrent_dropout, init and forget_bias
  /// from `section`,
  /// falling back to `defaults`, with the usual checks (unknown cell, ranges, types).
  static RecurrentSpec read(ConfigReader& config, const std::string& section,
                            const RecurrentSpec& defaults);
};

}  // namespace rnnkit::train

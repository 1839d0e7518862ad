#pragma once
// The options a cell type declares for itself (lstm's peephole, gru's reset_after, a plugin's
// own), and their values as RNNOptions::cell_options and [model.cell_options] carry them.
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "rnnkit/error.h"

namespace rnnkit {

/// The value of one cell option: a boolean, an integer, a number or a string. (A class, not a bare
/// std::variant, so that "relu" is a string and 1 an integer, never a bool.)
struct CellOptionValue {
  CellOptionValue(bool v) : value(v) {}
  CellOptionValue(int v) : value(int64_t{v}) {}
  CellOptionValue(int64_t v) : value(v) {}
  CellOptionValue(double v) : value(v) {}
  CellOptionValue(const char* v) : value(std::string(v)) {}
  CellOptionValue(std::string v) : value(std::move(v)) {}
  /// "a boolean", "an integer", "a number" or "a string".
  const char* type_name() const;
  /// As TOML writes it: true, 3, 0.5, "relu".
  std::string to_string() const;
  bool operator==(const CellOptionValue& o) const { return value == o.value; }
  std::variant<bool, int64_t, double, std::string> value;
};
/// A cell's own options by name (RNNOptions::cell_options, [model.cell_options] in the apps).
using CellOptions = std::map<std::string, CellOptionValue>;

/// One option a cell type takes: its name, its type and default (`default_value`), a line of
/// help, and what is allowed: [min, max] for numbers, `choices` for strings (empty: any).
struct CellOptionDef {
  std::string name;
  CellOptionValue default_value;
  std::string help;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices = {};
};

}  // namespace rnnkit

#pragma once
// Cells by name. Built in: rnn, gru_simple, gru, lstm, and the aliases rnn_relu (rnn with
// activation = "relu"), gru_reset_after (gru with reset_after = true) and lstm_peephole (lstm
// with peephole = true). A user registers a cell type of their own once, with the options it
// takes, and every layer and app can then use it:
//
//     rnnkit::register_cell(
//         "mgu",
//         [](const rnnkit::CellSpec& s) {
//           return std::make_shared<MGUCellImpl>(
//               MGUCellOptions(s.input_size(), s.hidden_size()).slim(s.option<int64_t>("slim")));
//         },
//         {{"slim", int64_t{0}, "drop the gate's input (1), and its bias (2)", 0, 2}});
//     rnnkit::RNN rnn(rnnkit::RNNOptions("mgu", 32, 64).cell_options({{"slim", 1}}));
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <torch/arg.h>

#include "rnnkit/cell.h"
#include "rnnkit/compat.h"
#include "rnnkit/init.h"

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

/// A cell option that is unknown, of the wrong type, out of range or fixed by an alias. `option`
/// is its name, for messages that say where it was set.
class CellOptionError : public std::invalid_argument {
 public:
  CellOptionError(std::string option, const std::string& message)
      : std::invalid_argument(message), option(std::move(option)) {}
  std::string option;
};

/// What a factory gets: the options common to all cells, and the cell's own, checked and
/// completed with their defaults by make_cell.
struct CellSpec {
  CellSpec(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(Init, init) = Init::kUniform;
  /// Gated cells: the bias towards keeping c<t-1> after initialisation (LSTM: b_f; GRUs:
  /// b_u = -forget_bias). The vanilla RNN ignores it.
  TORCH_ARG(optional<double>, forget_bias) = nullopt;
  TORCH_ARG(CellOptions, options) = {};

 public:
  /// The value of the cell's option `name` as T (bool, int64_t, double or std::string).
  template <class T>
  T option(const std::string& name) const {
    const auto it = options_.find(name);
    if (it == options_.end()) throw CellOptionError(name, "cell option '" + name + "' is not set");
    if (const T* v = std::get_if<T>(&it->second.value)) return *v;
    throw CellOptionError(name, "cell option '" + name + "' is " + it->second.type_name());
  }
};

using CellFactory = std::function<std::shared_ptr<CellImplBase>(const CellSpec&)>;

/// Registers (or replaces) a cell type and the options it takes. Thread-safe.
void register_cell(const std::string& name, CellFactory factory,
                   std::vector<CellOptionDef> options = {});
/// Registers `alias` as cell `cell` with some of its options fixed (lstm_peephole is lstm with
/// peephole = true); options the alias fixes cannot be given again.
void register_cell_alias(const std::string& alias, const std::string& cell, CellOptions fixed);
/// Builds a cell by name; an unknown name throws, listing the known ones, and the spec's options
/// are checked as check_cell_options does.
std::shared_ptr<CellImplBase> make_cell(const std::string& name, const CellSpec& spec);
/// The options cell `name` takes (for an alias, those it does not fix).
std::vector<CellOptionDef> cell_option_defs(const std::string& name);
/// `given` checked against cell `name`'s options, with the defaults filled in (for an alias, its
/// fixed options too). Throws CellOptionError for an unknown option (listing the known ones),
/// a wrong type, a number out of range, a string not among the choices, or an option the alias
/// fixes.
CellOptions check_cell_options(const std::string& name, const CellOptions& given);
/// "lstm" or "lstm(peephole=true)": a cell and the options given to it, for summaries.
std::string cell_label(const std::string& name, const CellOptions& given);
bool has_cell(const std::string& name);
/// The registered names (aliases included), sorted.
std::vector<std::string> cell_names();
/// The cells built into the library, sorted (tests and benchmarks enumerate these, so a new
/// built-in cell is covered by every once-per-cell test without a list to update).
std::vector<std::string> builtin_cell_names();

}  // namespace rnnkit

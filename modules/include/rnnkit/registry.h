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
#include <utility>
#include <variant>
#include <vector>

#include <torch/arg.h>

#include "rnnkit/cell.h"
#include "rnnkit/cell_options.h"
#include "rnnkit/compat.h"
#include "rnnkit/init.h"
#include "rnnkit/rnn_options.h"

namespace rnnkit {

/// What a factory gets: the recurrent options whole, with rnn().input_size() this layer's
/// input (the network's for the first layer, K * hidden_size above it) and rnn().cell_options()
/// checked and completed with their defaults by make_cell. The accessors below read rnn().
struct CellSpec {
  explicit CellSpec(RNNOptions rnn) : rnn_(std::move(rnn)) {}
  CellSpec(int64_t input_size, int64_t hidden_size) : rnn_("", input_size, hidden_size) {}
  TORCH_ARG(RNNOptions, rnn);

 public:
  int64_t input_size() const { return rnn_.input_size(); }
  int64_t hidden_size() const { return rnn_.hidden_size(); }
  Init init() const { return rnn_.init(); }
  /// Gated cells: the bias towards keeping c<t-1> after initialisation (RNNOptions).
  const optional<double>& forget_bias() const { return rnn_.forget_bias(); }
  /// The cell's own options.
  const CellOptions& options() const { return rnn_.cell_options(); }
  // For specs built by hand (make_cell without an RNN).
  CellSpec& init(Init v) {
    rnn_.init(v);
    return *this;
  }
  CellSpec& forget_bias(optional<double> v) {
    rnn_.forget_bias(v);
    return *this;
  }
  CellSpec& options(CellOptions v) {
    rnn_.cell_options(std::move(v));
    return *this;
  }

  /// The value of the cell's option `name` as T (bool, int64_t, double or std::string).
  template <class T>
  T option(const std::string& name) const {
    const auto it = options().find(name);
    if (it == options().end()) throw CellOptionError(name, "cell option '" + name + "' is not set");
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

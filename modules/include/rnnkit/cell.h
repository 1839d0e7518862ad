#pragma once
// The interface every recurrent cell implements, built-in or user-defined.
//
// A cell offers two paths that compute the same numbers:
//  - the plain path, `step(x_t, prev)`: one step, one line of code per equation (see
//    docs/equations.md);
//  - the fast path, `unroll(x)`: the input-side products of all T steps in one matrix product,
//    then a step function doing one recurrent product per step for all gates.
// The layers (RecurrentLayer, RNN) use the fast path; tests check that the two agree.
//
// Shapes: T = time steps, B = batch, D = input size, H = hidden size, G = width of the
// projected input (e.g. 4H for the LSTM).
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <rnnkit/cloneable.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/common.h>
#include <torch/nn/modules/container/any_module_holder.h>
#include <torch/nn/modules/container/any_value.h>
#include <torch/types.h>

#include "rnnkit/state.h"

namespace rnnkit {

/// The fast path of one sequence.
struct Unrolled {
  /// [T, B, G]: the input projection of every step, computed in one GEMM.
  torch::Tensor projected;
  /// One step from the projected input gx_t [B, G]. `a_rec` is a<t-1> as the recurrent product
  /// sees it: a<t-1> itself, or a<t-1> times the variational dropout mask. Everything else
  /// (gating, the update of c<t>) uses `prev`.
  std::function<State(const torch::Tensor& gx_t, const State& prev, const torch::Tensor& a_rec)>
      step;
};

/// Base of every cell. Concrete cells derive from `rnnkit::Cloneable<XImpl>` and from this (both
/// inherit torch::nn::Module virtually, so there is a single Module; rnnkit/cloneable.h says why
/// not torch::nn::Cloneable).
class CellImplBase : public virtual torch::nn::Module {
 public:
  virtual int64_t input_size() const = 0;
  virtual int64_t hidden_size() const = 0;
  /// Whether the cell carries c<t> separately from a<t> (the LSTM does).
  virtual bool has_memory_cell() const = 0;
  /// Refills the parameters in place (keeping their device and dtype) by the cell's init.
  virtual void reset_parameters() = 0;

  /// Plain path: one step, written out equation by equation. `prev` may be undefined (zeros).
  virtual State step(const torch::Tensor& x_t, const State& prev) = 0;

  /// Fast path over x [T, B, D]. The default has no fast path: it feeds x_t to `step`, and
  /// applies the recurrent-dropout mask to a<t-1> everywhere (a cell that wants the exact
  /// variational form overrides this).
  virtual Unrolled unroll(const torch::Tensor& x);

  /// Multiply-add FLOPs of the matrix products of one step for a batch of B (benchmarks report
  /// GFLOP/s with it). The default counts every 2-D parameter once: 2 * B * its size, which is
  /// right for a cell that multiplies each weight matrix once per step; override otherwise.
  virtual double matmul_flops_per_step(int64_t batch) const;

  /// Zeros of the state's shape, with the options (device, dtype) of `like`.
  State zero_state(int64_t batch, const torch::TensorOptions& like) const;

  /// The checks every step starts with, for user cells too: x_t [B, D] and prev (a<t-1> [B, H],
  /// and c<t-1> [B, H] for a cell with a memory cell); an undefined prev becomes zeros.
  State check_step_args(const torch::Tensor& x_t, const State& prev) const;
};

/// The size checks of every cell's constructor: "WHO: input_size must be positive, got N".
void check_cell_sizes(const std::string& who, int64_t input_size, int64_t hidden_size);

/// What every cell repeats, written once (as torch::nn's RNNImplBase does for its RNNs):
/// Cloneable, the size checks, `forward` as `step`, the size accessors from the options, and a
/// one-line pretty_print, "<kName>(input_size=D, hidden_size=H<print_options>)".
///
/// A cell derives `class XImpl : public CellBase<XImpl, XOptions>`, where XOptions has
/// input_size() and hidden_size(), and defines
///   static constexpr const char* kName;   e.g. "rnnkit::LSTMCell"
///   reset(), reset_parameters(), step(), has_memory_cell();
/// and, when it wants them, unroll() (a fast path) and print_options(os) (", key=value" for its
/// own options). Its constructor calls reset().
template <class Derived, class Options>
class CellBase : public rnnkit::Cloneable<Derived>, public CellImplBase {
 public:
  explicit CellBase(Options options_) : options(std::move(options_)) {
    check_cell_sizes(Derived::kName, options.input_size(), options.hidden_size());
  }

  /// One step: x_t [B, D], prev (undefined: zeros) -> the state at t.
  State forward(const torch::Tensor& x_t, const State& prev = {}) { return this->step(x_t, prev); }
  int64_t input_size() const override { return options.input_size(); }
  int64_t hidden_size() const override { return options.hidden_size(); }
  void pretty_print(std::ostream& os) const override {
    os << Derived::kName << "(input_size=" << options.input_size()
       << ", hidden_size=" << options.hidden_size();
    static_cast<const Derived&>(*this).print_options(os);
    os << ")";
  }
  /// The cell's own options for pretty_print (none by default).
  void print_options(std::ostream&) const {}

  Options options;

 protected:
  // So that a cell works inside torch::nn::Sequential and AnyModule with x_t alone.
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(State())})
};

}  // namespace rnnkit
